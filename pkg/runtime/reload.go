package runtime

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/metrics"
)

// Reloader applies the config file to a Live again on SIGHUP and whenever the file's content changes.
//
// It polls: every interval (reload.interval) it hashes the file and reloads when the hash differs from the
// one last applied. Reading the file by its path each time follows every way a file can be replaced: an
// editor's rename, a Kubernetes ConfigMap update (an atomic swap of the ..data symlink, which leaves the
// old file's inode untouched and a watch on it silent), a file system without change notification. A
// small read once a second is all it costs, and there is no event burst to debounce.
type Reloader struct {
	Live    *Live
	Loader  Loader
	Logger  *slog.Logger     // nil: slog.Default()
	Metrics *metrics.Metrics // nil: reloads are not counted

	mu   sync.Mutex // serialises reloads; guards hash
	hash [sha256.Size]byte
}

// Run reloads on SIGHUP and, when the current config's reload.interval is not 0, on a change of the file's
// content, until ctx ends. The interval is read again after each poll, so a reload can change it.
func (r *Reloader) Run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	r.mu.Lock()
	r.hash, _ = fileHash(r.Loader.Path) // the file start-up read
	r.mu.Unlock()
	t := time.NewTimer(r.interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.Reload("SIGHUP")
		case <-t.C:
			r.Poll()
			t.Reset(r.interval())
		}
	}
}

// interval is the poll period of the current config; polling off is a very long one.
func (r *Reloader) interval() time.Duration {
	if d := r.Live.Current().Config.Reload.Interval.Std(); d > 0 {
		return d
	}
	return 24 * time.Hour * 365
}

// Poll reloads when the file's content differs from what was last applied, and reports whether it did.
func (r *Reloader) Poll() bool {
	// Hash before loading: if the file changes again in between, the next poll sees a different hash and
	// reloads again, rather than a new file being taken for the one already applied.
	h, err := fileHash(r.Loader.Path)
	if err != nil {
		r.log().Error("config file unreadable; the running config stays in force", "error", err)
		return false
	}
	r.mu.Lock()
	same := h == r.hash
	r.mu.Unlock()
	if same {
		return false
	}
	err = r.Reload("file")
	// An invalid file is not tried again until it changes: one error line per bad version, not one a second.
	r.mu.Lock()
	r.hash = h
	r.mu.Unlock()
	return err == nil
}

// Reload loads the config again and applies it. An invalid file keeps the running config; the error says
// why and is logged.
func (r *Reloader) Reload(trigger string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	log := r.log()
	cfg, err := r.Loader.Load()
	if err == nil {
		warnFixed(log, r.Live.Current().Config, cfg)
		var kept int
		if kept, err = r.Live.Apply(cfg); err == nil {
			r.count(nil)
			log.Info("config reloaded", "trigger", trigger, "pools", len(cfg.Pools), "pools_keeping_keys", kept, "rules", len(cfg.Rules))
			return nil
		}
	}
	r.count(err)
	log.Error("config reload rejected; the running config stays in force", "trigger", trigger, "error", err)
	return err
}

func (r *Reloader) log() *slog.Logger {
	if r.Logger == nil {
		return slog.Default()
	}
	return r.Logger
}

func (r *Reloader) count(err error) {
	if r.Metrics != nil {
		r.Metrics.ConfigReload(err)
	}
}

// warnFixed warns about settings a reload cannot change: the listeners are bound once, and the logger and
// HTTP handler options are made once.
func warnFixed(log *slog.Logger, old, cfg *config.Config) {
	fixed := []struct {
		key      string
		was, now any
	}{
		{"server.grpc_addr", old.Server.GRPCAddr, cfg.Server.GRPCAddr},
		{"server.http_addr", old.Server.HTTPAddr, cfg.Server.HTTPAddr},
		{"server.admin_addr", old.Server.AdminAddr, cfg.Server.AdminAddr},
		{"server.http_path_prefix", old.Server.HTTPPathPrefix, cfg.Server.HTTPPathPrefix},
		{"server.http_trust_forwarded", old.Server.HTTPTrustForwarded, cfg.Server.HTTPTrustForwarded},
		{"server.http_forwarded", old.Server.HTTPForwarded, cfg.Server.HTTPForwarded},
		{"server listener bounds (max_*, receive_timeout, connection_timeout, keepalive)", bounds(old.Server), bounds(cfg.Server)},
		{"dynamic_metadata.identity", old.DynamicMetadata.Identity, cfg.DynamicMetadata.Identity},
		{"log.level", old.Log.Level, cfg.Log.Level},
		{"log.format", old.Log.Format, cfg.Log.Format},
	}
	for _, f := range fixed {
		if f.was != f.now {
			log.Warn("setting changed in the config file; it takes effect only on restart", "key", f.key, "running", f.was, "file", f.now)
		}
	}
}

// bounds is the part of server that sets the listeners' limits, comparable as one value.
func bounds(s config.Server) any {
	return [...]any{s.MaxRecvMsgSize, s.MaxConcurrentStreams, s.MaxReceivingRequests, s.ReceiveTimeout, s.MaxConnections,
		s.ConnectionTimeout, s.MaxConnectionIdle, s.MaxConnectionAge, s.MaxConnectionAgeGrace, s.Keepalive}
}

// fileHash hashes the file at path, following symlinks: the ConfigMap's ..data swap changes what it reads.
func fileHash(path string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	f, err := os.Open(path)
	if err != nil {
		return h, err
	}
	defer f.Close()
	d := sha256.New()
	if _, err := io.Copy(d, io.LimitReader(f, 8<<20)); err != nil {
		return h, err
	}
	copy(h[:], d.Sum(nil))
	return h, nil
}
