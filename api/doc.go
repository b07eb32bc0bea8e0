// Package api holds the service's wire contract as data: sample Envoy CheckRequests under samples/, and tests
// that keep the README's contract tables in step with the code.
package api
