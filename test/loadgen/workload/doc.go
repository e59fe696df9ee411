// Package workload is what the load generator sends and what it is
// priced by: the ext_proc messages of one request as Envoy sends them
// (Messages, NewLifecycle), the configuration spendguard runs with under
// load (Config, StoreSection, ExpectedCost), and Replay, which plays a
// lifecycle to a Process method without gRPC.
//
// It imports neither the program nor the load generator, so a package's
// benchmarks (processor's) use it without building cmd/spendguard.
package workload
