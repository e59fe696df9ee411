package envoy

import _ "embed"

// BootstrapYAML is envoy/envoy.yaml, the reference bootstrap, as shipped:
// test/envoysim reads its buffer limit, local_reply_config and ext_proc
// settings from it (Config.ApplyBootstrapYAML), so the Envoy stand-in of the
// end-to-end tests and the demo behaves as this file configures Envoy.
//
//go:embed envoy.yaml
var BootstrapYAML []byte
