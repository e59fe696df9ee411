// Package spendguardv1 holds the Go code generated from
// proto/spendguard/v1/*.proto: the CostReport that spendguard produces for
// every request on a cost path and hands to its exporters.
//
// Everything but this file and the tests is generated; edit the .proto and
// run `make proto` (`make proto-check` tells whether the generated code is
// current).
package spendguardv1
