// Package e2e holds end-to-end tests that run cognito-authz against real peers.
package e2e
