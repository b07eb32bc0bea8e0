package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/cognito-authz/cognito-authz/pkg/metrics"
)

// service is the running configuration. Requests read the current generation through an atomic pointer;
// a reload builds a whole new generation beside it and swaps it in between requests, so a request sees
// either the old config or the new one, never a mix, and never waits for a reload.
type service struct {
	log     *slog.Logger
	load    func() (*config.Config, error)
	metrics *metrics.Metrics // nil in tests that need none
	ctx     context.Context  // lifetime of the key sets' refresh loops
	wg      sync.WaitGroup   // the refresh loops

	cur atomic.Pointer[generation]

	mu   sync.Mutex          // serialises reloads; guards sets
	sets map[string]*liveSet // by setKey: what a reload may keep
	hash [sha256.Size]byte   // of the file last applied by a watch event
}

// generation is one config and what was built from it.
type generation struct {
	cfg *config.Config
	app *app
}

// liveSet is a key set and the cancel of its refresh loop.
type liveSet struct {
	set  *jwks.Set
	stop context.CancelFunc
}

// setKey is everything a pool's key set is made from. A pool whose key is unchanged keeps its loaded keys
// across a reload; client ids, token use and the pool's name only change the verifier, which is rebuilt.
func setKey(cfg *config.Config, p config.Pool) string {
	return fmt.Sprintf("%s|%s|%s|%s", p.KeysURL(), cfg.JWKS.RefreshInterval.Std(), cfg.JWKS.UnknownKIDWindow.Std(), cfg.JWKS.FetchTimeout.Std())
}

// newService builds the first generation and starts its key sets.
func newService(ctx context.Context, cfg *config.Config, log *slog.Logger, load func() (*config.Config, error), m *metrics.Metrics) (*service, error) {
	s := &service{log: log, load: load, metrics: m, ctx: ctx, sets: map[string]*liveSet{}}
	if err := s.apply(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// authorizer is the current generation's authorizer.
func (s *service) authorizer() *authz.Authorizer { return s.cur.Load().app.authorizer }

// ready reports whether every pool of the current generation has loaded its keys once.
func (s *service) ready() bool {
	for _, set := range s.cur.Load().app.sets {
		if !set.Ready() {
			return false
		}
	}
	return true
}

// wait returns when every refresh loop has stopped (after ctx ends).
func (s *service) wait() { s.wg.Wait() }

// apply builds a generation from cfg, reusing the key sets of unchanged pools, swaps it in, and stops the
// refresh loops of the sets it no longer uses. On error nothing changes.
func (s *service) apply(cfg *config.Config) error {
	next := map[string]*liveSet{}
	fresh := newKeys(s.log, s.metrics)
	a, err := build(cfg, func(cfg *config.Config, p config.Pool) (*jwks.Set, error) {
		k := setKey(cfg, p)
		if ls, ok := next[k]; ok {
			return ls.set, nil // two pools over one JWKS share it
		}
		if ls, ok := s.sets[k]; ok {
			next[k] = ls
			return ls.set, nil
		}
		set, err := fresh(cfg, p)
		if err != nil {
			return nil, err
		}
		next[k] = &liveSet{set: set}
		return set, nil
	}, s.metrics)
	if err != nil {
		return err
	}
	for _, ls := range next {
		if ls.stop == nil {
			ctx, cancel := context.WithCancel(s.ctx)
			ls.stop = cancel
			s.wg.Go(func() { ls.set.Run(ctx) })
		}
	}
	s.cur.Store(&generation{cfg: cfg, app: a})
	// Requests that loaded the old generation may still read a stopped set: its keys stay in memory, only
	// the refreshing ends.
	for k, ls := range s.sets {
		if _, kept := next[k]; !kept {
			ls.stop()
		}
	}
	s.sets = next
	return nil
}

// reload loads the config again and applies it. An invalid file keeps the running config; the error says
// why and is logged.
func (s *service) reload(trigger string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, err := s.load()
	if err == nil {
		old := s.cur.Load().cfg
		s.warnFixed(old, cfg)
		kept := 0
		for _, p := range cfg.Pools {
			if _, ok := s.sets[setKey(cfg, p)]; ok {
				kept++
			}
		}
		if err = s.apply(cfg); err == nil {
			s.countReload(nil)
			s.log.Info("config reloaded", "trigger", trigger, "pools", len(cfg.Pools), "pools_keeping_keys", kept, "rules", len(cfg.Rules))
			return nil
		}
	}
	s.countReload(err)
	s.log.Error("config reload rejected; the running config stays in force", "trigger", trigger, "error", err)
	return err
}

func (s *service) countReload(err error) {
	if s.metrics != nil {
		s.metrics.ConfigReload(err)
	}
}

// warnFixed warns about settings a reload cannot change: the listeners are bound once, and the logger and
// HTTP handler options are made once.
func (s *service) warnFixed(old, cfg *config.Config) {
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
		{"server listener bounds (max_*, receive_timeout, connection_timeout, keepalive)", serverLimits(old.Server), serverLimits(cfg.Server)},
		{"log.level", old.Log.Level, cfg.Log.Level},
		{"log.format", old.Log.Format, cfg.Log.Format},
		{"dynamic_metadata.identity", old.DynamicMetadata.Identity, cfg.DynamicMetadata.Identity},
	}
	for _, f := range fixed {
		if f.was != f.now {
			s.log.Warn("setting changed in the config file; it takes effect only on restart", "key", f.key, "running", f.was, "file", f.now)
		}
	}
}

// reloadOn reloads on SIGHUP and, when path is set, on a change of the file's content, until ctx ends.
func (s *service) reloadOn(ctx context.Context, path string) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	changed := make(chan struct{}, 1)
	if path != "" {
		s.mu.Lock()
		s.hash, _ = fileHash(path)
		s.mu.Unlock()
		go s.watch(ctx, path, changed)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			s.reload("SIGHUP")
		case <-changed:
			s.reloadIfChanged(path)
		}
	}
}

// reloadIfChanged reloads when the file's content differs from what was last applied: a ConfigMap update
// fires several events, and an editor's save may fire one with nothing changed.
func (s *service) reloadIfChanged(path string) {
	// Hash before loading: if the file changes again in between, the next event sees a different hash and
	// reloads again, rather than a new file being taken for the one already applied.
	h, err := fileHash(path)
	if err != nil {
		s.log.Error("config file unreadable; the running config stays in force", "error", err)
		return
	}
	s.mu.Lock()
	same := h == s.hash
	s.mu.Unlock()
	if same {
		return
	}
	if s.reload("file") == nil {
		s.mu.Lock()
		s.hash = h
		s.mu.Unlock()
	}
}

// debounce gathers the burst of events one update makes (a ConfigMap swap is several renames and removes).
const debounce = 100 * time.Millisecond

// watch signals changed whenever the config file may have changed.
//
// It watches the file's directory with fsnotify, not the file: Kubernetes updates a mounted ConfigMap by
// swapping the directory's ..data symlink, so the file's own inode never changes and a watch on it goes
// silent after the first update; editors that save by rename do the same. If no watch can be had (inotify
// limits, an unsupported file system), it polls the file's hash every second instead: a small read once a
// second, and correct for every way a file can change.
func (s *service) watch(ctx context.Context, path string, changed chan<- struct{}) {
	notify := func() {
		select {
		case changed <- struct{}{}:
		default: // one is pending already
		}
	}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(path)); err != nil {
			w.Close()
		}
	}
	if err != nil {
		s.log.Warn("cannot watch the config directory; polling the file every second", "error", err)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				notify() // reloadIfChanged compares hashes
			}
		}
	}
	defer w.Close()
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			_ = ev // any change in the directory may be ours (..data, a temp file renamed): the hash decides
			if timer == nil {
				timer = time.AfterFunc(debounce, func() {
					select {
					case fire <- struct{}{}:
					default:
					}
				})
			} else {
				timer.Reset(debounce)
			}
		case <-fire:
			timer = nil
			notify()
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			s.log.Warn("config watch error", "error", err)
			notify()
		}
	}
}

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
