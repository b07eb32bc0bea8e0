// Package deploy holds the deployment assets of cognito-authz: the container image (Dockerfile),
// Kubernetes manifests (a kustomize base and an example overlay), a Helm chart (helm/cognito-authz),
// Prometheus alert rules and a Grafana dashboard (monitoring/), Istio extension providers and
// AuthorizationPolicies, and a Docker Compose demo. It has no Go code of its own; deploy_test.go
// builds and decodes the assets the way Kubernetes, kustomize, Helm, Prometheus and Istio read them, and checks that
// ports, service names and header names agree across them, the Envoy configs in envoy/ and the
// service's own configuration (pkg/config).
package deploy
