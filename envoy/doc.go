// Package envoy holds spendguard's Envoy deployment files (envoy.yaml and the
// variants added later) and the offline checks that keep them loadable by the
// pinned Envoy version.
//
// No Envoy binary runs in our tests, so ValidateBootstrapYAML parses a
// bootstrap against the go-control-plane API that matches the Envoy image,
// runs the protoc-gen-validate rules on every message (including those packed
// in Any fields) and then checks by hand the rules Envoy enforces only at load
// time, plus the ext_proc settings spendguard depends on. Its tests also keep
// every shipped bootstrap's request buffer limit within spendguard's gRPC
// message limit, and its 413 in the error shape of the request's API:
// Anthropic's on /v1/messages, OpenAI's elsewhere (limits_test.go).
// BootstrapYAML embeds envoy.yaml for the Envoy stand-in (test/envoysim) of
// the demo and the tests. The package has no runtime role: nothing in the
// sidecar imports it.
package envoy
