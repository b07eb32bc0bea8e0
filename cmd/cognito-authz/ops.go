package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"runtime"
	"runtime/debug"

	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/metrics"
	"github.com/cognito-authz/cognito-authz/pkg/server"
)

// newMetrics makes the service's collectors, labelled with the module version this binary was built from
// ("(devel)" from a work tree).
func newMetrics() *metrics.Metrics {
	version := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	return metrics.New(version, runtime.Version())
}

// listenerTLS maps server.tls onto a reloadable tls.Config for the ext_authz listeners, and its reloader
// (run it for the life of the listeners). Both are nil when TLS is off.
func listenerTLS(c config.TLS, log *slog.Logger) (*tls.Config, func(context.Context), error) {
	if !c.Enabled() {
		return nil, nil, nil
	}
	return server.TLSOptions{CertFile: c.CertFile, KeyFile: c.KeyFile, ClientCAFile: c.ClientCAFile, Logger: log}.ServerConfig()
}
