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

// serverLimits maps the server.* bounds onto the listeners' limits.
func serverLimits(s config.Server) server.Limits {
	return server.Limits{
		MaxRecvMsgSize:               int(s.MaxRecvMsgSize),
		MaxConcurrentStreams:         uint32(s.MaxConcurrentStreams),
		MaxReceivingRequests:         s.MaxReceivingRequests,
		ReceiveTimeout:               s.ReceiveTimeout.Std(),
		MaxConnections:               s.MaxConnections,
		ConnectionTimeout:            s.ConnectionTimeout.Std(),
		MaxConnectionIdle:            s.MaxConnectionIdle.Std(),
		MaxConnectionAge:             s.MaxConnectionAge.Std(),
		MaxConnectionAgeGrace:        s.MaxConnectionAgeGrace.Std(),
		KeepaliveTime:                s.Keepalive.Time.Std(),
		KeepaliveTimeout:             s.Keepalive.Timeout.Std(),
		KeepaliveMinTime:             s.Keepalive.MinTime.Std(),
		KeepalivePermitWithoutStream: s.Keepalive.PermitWithoutStream,
	}
}
