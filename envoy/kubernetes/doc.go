// Package kubernetes holds spendguard's Kubernetes manifests: a kustomize
// base (base/: the llm-gateway Deployment running Envoy and the spendguard
// sidecar, their ConfigMaps, Service, PodDisruptionBudget, NetworkPolicy)
// and overlays (overlays/redis: the Redis store and several replicas).
//
// It has no Go API. Its tests render every kustomization with `kubectl
// kustomize` (and fail when kubectl is missing), decode every object
// strictly into the Kubernetes API types, run spendguard's configuration
// loader and Envoy's offline validation on the ConfigMaps, and check that
// ports, mounted paths, probes and shutdown timings agree across the Envoy
// bootstrap, the Deployment and spendguard's flags. docs/deployment.md is
// the operator's guide to them.
package kubernetes
