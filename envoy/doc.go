// Package envoy holds spendguard's Envoy deployment files (envoy.yaml and the
// variants added later) and the offline checks that keep them loadable by the
// pinned Envoy version.
//
// No Envoy binary runs in our tests, so ValidateBootstrapYAML parses a
// bootstrap against the go-control-plane API that matches the Envoy image,
// runs the protoc-gen-validate rules on every message (including those packed
// in Any fields) and then checks by hand the rules Envoy enforces only at load
// time, plus the ext_proc settings spendguard depends on. The package has no
// runtime role: nothing in the sidecar imports it.
package envoy
