// Package compose holds the configuration files of the docker-compose quick
// start (docker-compose.yaml at the repository root): the Envoy bootstrap in
// envoy/ and spendguard's configuration in spendguard/, each mounted into
// its container as a directory.
//
// It has no Go API. Its tests load docker-compose.yaml with the
// compose-spec loader (the one Docker Compose uses, schema-validated, so an
// unknown key fails) under every profile, check that every file it builds
// or mounts exists, validate the Envoy bootstrap offline and spendguard's
// configuration with its own loader, and keep the Envoy image, the
// Dockerfile's Go version and go.mod in step.
package compose
