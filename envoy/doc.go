// Package envoy holds the Envoy bootstrap configurations for running cognito-authz behind a
// front proxy: envoy.yaml (gRPC ext_authz, the recommended mode), envoy-headless.yaml (the same, balancing
// per request over a headless Service's pods) and envoy-http.yaml (HTTP ext_authz). It has no Go code of its own; envoy_test.go decodes every configuration the way
// Envoy does (strict protobuf JSON, typed extensions resolved, PGV rules checked) and asserts the
// settings the security of the deployment depends on. See README.md for why each one is set.
package envoy
