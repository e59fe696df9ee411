// Package e2e runs spendguard end to end: real HTTP requests go through
// test/envoysim (Envoy's ext_proc behaviour, over a real gRPC stream) to
// spendguard started in-process by its own program (cmd/spendguard/app) or
// as real OS processes, and on to test/fakevllm over real HTTP, with real
// Redis and PostgreSQL where a deployment would have them. The package has
// tests only.
package e2e
