package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/cognito-authz/cognito-authz/pkg/metrics"
)

// Loader reads the config file the way serve, every reload, config check and verify all do.
type Loader struct {
	Path string
	// Env looks up the environment overrides (os.LookupEnv in main); nil applies none.
	Env func(string) (string, bool)
	// Amend changes the decoded file before it is validated: serve -dev adds its pool, so a file without
	// pools is valid there.
	Amend func(*config.Config)
}

// Load reads, amends, overrides from the environment and validates (Validate: shape and rules) the file.
func (l Loader) Load() (*config.Config, error) {
	c, err := config.Read(l.Path)
	if err != nil {
		return nil, err
	}
	if l.Amend != nil {
		l.Amend(c)
	}
	if l.Env != nil {
		c.OverrideEnv(l.Env)
	}
	if err := Validate(c); err != nil {
		return nil, fmt.Errorf("config %s: %w", l.Path, err)
	}
	return c, nil
}

// Live is the running configuration. Requests read the current generation through one atomic pointer; Apply
// builds a whole new generation beside it and swaps it in between requests, so a request sees either the
// old config or the new one, never a mix, and never waits for a reload.
type Live struct {
	log     *slog.Logger
	metrics *metrics.Metrics
	ctx     context.Context // lifetime of the key sets' refresh loops
	wg      sync.WaitGroup  // the refresh loops

	cur atomic.Pointer[Generation]

	mu   sync.Mutex // serialises Apply; guards sets
	sets map[SetKey]*liveSet
}

// liveSet is a running key set and the cancel of its refresh loop.
type liveSet struct {
	set  *jwks.Set
	stop context.CancelFunc
}

// Start builds the first generation from cfg and runs its key sets until ctx ends. o.Keys is ignored: Live
// keeps the sets itself.
func Start(ctx context.Context, cfg *config.Config, o Options) (*Live, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	l := &Live{log: o.Logger, metrics: o.Metrics, ctx: ctx, sets: map[SetKey]*liveSet{}}
	if _, err := l.Apply(cfg); err != nil {
		return nil, err
	}
	return l, nil
}

// Current is the generation in force.
func (l *Live) Current() *Generation { return l.cur.Load() }

// Authorizer is the current generation's authorizer: the one indirection a reload goes through.
func (l *Live) Authorizer() *authz.Authorizer { return l.cur.Load().Authorizer }

// Ready reports whether every pool of the current generation has loaded its keys once.
func (l *Live) Ready() bool {
	for _, k := range l.cur.Load().Keys {
		if !k.Set.Ready() {
			return false
		}
	}
	return true
}

// Wait returns when every refresh loop has stopped (after the context of Start ends).
func (l *Live) Wait() { l.wg.Wait() }

// Running is the number of key sets whose refresh loops run.
func (l *Live) Running() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sets)
}

// Apply builds a generation from cfg, reusing the running key set of every pool whose set would be built
// the same (SetKey), swaps it in, and stops the refresh loops of the sets it no longer uses. It returns how
// many pools kept their loaded keys. On error nothing changes.
func (l *Live) Apply(cfg *config.Config) (kept int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	next := map[SetKey]*liveSet{}
	g, err := Build(cfg, Options{Logger: l.log, Metrics: l.metrics, Keys: func(k SetKey, o jwks.Options) (*jwks.Set, error) {
		if ls, ok := next[k]; ok {
			if _, old := l.sets[k]; old {
				kept++
			}
			return ls.set, nil // two pools over one JWKS share it
		}
		if ls, ok := l.sets[k]; ok {
			next[k] = ls
			kept++
			return ls.set, nil
		}
		set, err := jwks.New(o)
		if err != nil {
			return nil, err
		}
		next[k] = &liveSet{set: set}
		return set, nil
	}})
	if err != nil {
		return 0, err
	}
	for _, ls := range next {
		if ls.stop == nil {
			ctx, cancel := context.WithCancel(l.ctx)
			ls.stop = cancel
			l.wg.Go(func() { ls.set.Run(ctx) })
		}
	}
	l.cur.Store(g)
	// Requests that loaded the old generation may still read a stopped set: its keys stay in memory, only
	// the refreshing ends.
	for k, ls := range l.sets {
		if _, ok := next[k]; !ok {
			ls.stop()
		}
	}
	l.sets = next
	return kept, nil
}
