// Package proxytest runs the README's forward-auth recipes for real: Debian's Caddy 2.6 and a current Caddy
// (forward_auth), Debian's nginx (auth_request) and Traefik (ForwardAuth), each in front of an echo upstream
// that reports exactly the headers it received, with the built cognito-authz binary serving the HTTP
// protocol on a dev issuer. The recipes live in testdata/, and a test keeps the README's code blocks equal
// to them. The binaries are found through the variables the Makefile exports (CADDY_DEBIAN_BIN, CADDY_BIN,
// NGINX_BIN, TRAEFIK_BIN); a missing proxy skips its test, except in CI, where it fails.
package proxytest
