// Package runtime turns a config into the running objects: Build maps a config.Config onto a Generation
// (the verifier's claim list, the identity headers, the token sources, one key set per pool, the policy and
// the authorizer). It is the one build path: serve's start-up, every reload, `config check` and `verify`
// all call it, so what the config check accepts is exactly what serve runs.
//
// Live holds the generation in force and the key sets' refresh loops, and swaps a new generation in on
// reload (Reloader polls the file and listens for SIGHUP).
package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/cognito-authz/cognito-authz/pkg/metrics"
	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/session"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// Generation is one config and everything built from it. It is immutable once built.
type Generation struct {
	Config     *config.Config
	Policy     *policy.Policy
	Claims     []string // the claims the verifier keeps: the policy's and the identity headers'
	Headers    authz.IdentityHeaders
	Sources    []token.Source
	Keys       []PoolKeys // one per pool, in the config's order; pools over one JWKS share a set
	Verifier   *token.Verifier
	Session    *session.Flow // browser sign-in; nil without a browser: block
	Authorizer *authz.Authorizer
}

// PoolKeys is a pool's key set and the key it is kept under across reloads.
type PoolKeys struct {
	Pool string
	Key  SetKey
	Set  *jwks.Set
}

// SetKey is derived from the very options a key set is built with (KeyOf), so two pools, or two
// generations, share a set exactly when it would be built the same: a reload can never keep a set that was
// built with options it has since changed.
type SetKey struct {
	URL                                     string
	RefreshInterval, UnknownKIDWindow, Wait time.Duration
	FetchTimeout                            time.Duration
}

// KeyOf is the key of the set o builds. Logger, OnRefresh and OnRejected only observe, and are left out.
func KeyOf(o jwks.Options) SetKey {
	return SetKey{URL: o.URL, RefreshInterval: o.RefreshInterval, UnknownKIDWindow: o.UnknownKIDWindow,
		Wait: o.WaitMax, FetchTimeout: o.FetchTimeout}
}

// KeySource gives the key set for o, whose key is k: a new unloaded one (NewKeys), or on reload the one
// already running under k.
type KeySource func(k SetKey, o jwks.Options) (*jwks.Set, error)

// NewKeys makes a new, unloaded key set: nothing is fetched until it runs or is refreshed.
func NewKeys(_ SetKey, o jwks.Options) (*jwks.Set, error) { return jwks.New(o) }

// Options are what Build needs besides the config.
type Options struct {
	Logger  *slog.Logger     // nil: slog.Default()
	Metrics *metrics.Metrics // nil: nothing is counted
	Keys    KeySource        // nil: NewKeys
}

// Validate checks cfg as serve would run it: its shape (config.Validate) and what its rules mean
// (policy.New), every problem at once, each named by its key path and wrapping config.ErrInvalid.
func Validate(cfg *config.Config) error {
	var problems []error
	if err := cfg.Validate(); err != nil {
		problems = unjoin(err)
	}
	if _, err := compilePolicy(cfg); err != nil {
		problems = append(problems, unjoin(err)...)
	}
	return errors.Join(problems...) // one flat list: config check prints one line each
}

// Build builds a Generation from cfg, which must have passed Validate (Loader.Load does): serve's start-up
// and reload, config check and verify all load and build this way. Nothing is fetched: run or refresh the
// key sets to load them.
func Build(cfg *config.Config, o Options) (*Generation, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Keys == nil {
		o.Keys = NewKeys
	}
	pol, err := compilePolicy(cfg)
	if err != nil {
		return nil, err
	}
	g := &Generation{Config: cfg, Policy: pol, Headers: cfg.Identity.IdentityHeaders}
	pools := make([]token.Pool, 0, len(cfg.Pools))
	for _, p := range cfg.Pools {
		jo := jwks.Options{
			URL:              p.KeysURL(),
			RefreshInterval:  cfg.JWKS.RefreshInterval.Std(),
			UnknownKIDWindow: cfg.JWKS.UnknownKIDWindow.Std(),
			FetchTimeout:     cfg.JWKS.FetchTimeout.Std(),
			Logger:           o.Logger.With("pool", p.Name),
			OnRefresh:        onRefresh(o.Metrics, p.Name),
			OnRejected:       onRejected(o.Metrics, p.Name),
		}
		k := KeyOf(jo)
		set, err := o.Keys(k, jo)
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", p.Name, err)
		}
		g.Keys = append(g.Keys, PoolKeys{Pool: p.Name, Key: k, Set: set})
		pools = append(pools, token.Pool{Name: p.Name, Issuers: p.Issuers(), ClientIDs: p.ClientIDs, TokenUse: p.TokenUse, Keys: set})
	}
	// Requirements and identity headers read these claims: the verifier must keep them.
	g.Claims = pol.Claims()
	g.Claims = append(g.Claims, slices.Sorted(maps.Keys(cfg.Identity.Claims))...)
	slices.Sort(g.Claims)
	g.Claims = slices.Compact(g.Claims)
	g.Verifier, err = token.NewVerifier(pools,
		token.WithLeeway(cfg.Token.Leeway.Std()),
		token.WithMaxBytes(cfg.Token.MaxBytes),
		token.WithClaims(g.Claims...))
	if err != nil {
		return nil, err
	}
	for _, s := range cfg.Token.Sources {
		g.Sources = append(g.Sources, token.Source{Header: s.Header, Prefix: s.Prefix, Cookie: s.Cookie})
	}
	if g.Session, err = buildSession(cfg, pools, g.Verifier, g.Claims, o.Logger); err != nil {
		return nil, err
	}
	g.Authorizer, err = authz.New(authz.Options{
		Verifier:     g.Verifier,
		Policy:       pol,
		Sources:      g.Sources,
		MaxBytes:     cfg.Token.MaxBytes,
		Headers:      g.Headers,
		ForwardToken: *cfg.Identity.ForwardToken,
		DryRun:       cfg.DryRun,
		// paths.ambiguous: strictest (every rule a reading selects must allow) or reject (400 path_ambiguous).
		RejectAmbiguousPaths: cfg.Paths.Ambiguous == "reject",
		Session:              g.Session,
		Cache: authz.CacheOptions{
			MaxEntries:  cfg.Cache.MaxEntries,
			MaxBytes:    int64(cfg.Cache.MaxBytes),
			NegativeTTL: cfg.Cache.NegativeTTL.Std(),
			OnHit:       cacheHook(o.Metrics, (*metrics.Metrics).CacheHit),
			OnMiss:      cacheHook(o.Metrics, (*metrics.Metrics).CacheMiss),
		},
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// compilePolicy maps the config's rules onto policy rules and compiles them. Its problems are policy.New's,
// renamed to the key path of the file ("rules[2] (admin).match.host: ..."). It reads only rules and default,
// so it runs on a config that fails its shape check too: config check prints both kinds at once.
func compilePolicy(cfg *config.Config) (*policy.Policy, error) {
	def, err := policy.ParseAction(cfg.Default)
	if err != nil {
		def = policy.Authenticated // config.Validate reports it
	}
	rules := make([]policy.Rule, 0, len(cfg.Rules))
	for _, r := range cfg.Rules {
		action, err := policy.ParseAction(r.Action)
		if err != nil {
			action = policy.Authenticated // config.Validate reports it
		}
		m := r.Match
		pr := policy.Rule{
			Name:   r.Name,
			Action: action,
			Match: policy.Match{Host: m.Host, PathExact: m.PathExact, PathPrefix: m.PathPrefix, PathRegex: m.PathRegex,
				Methods: m.Methods, ContextExtensions: m.ContextExtensions},
			AnonymousOnInvalid: r.OptionalInvalid == "anonymous",
			DryRun:             r.DryRun,
		}
		if m.Method != "" {
			pr.Match.Methods = []string{m.Method}
		}
		if q := r.Require; q != nil {
			pr.Require = policy.Require{Pools: q.Pools, TokenUse: q.TokenUse, GroupsAny: q.GroupsAny, GroupsAll: q.GroupsAll,
				ScopesAny: q.ScopesAny, ScopesAll: q.ScopesAll}
			if len(q.Claims) > 0 {
				pr.Require.Claims = make(map[string][]string, len(q.Claims))
				for k, v := range q.Claims {
					pr.Require.Claims[k] = v
				}
			}
		}
		rules = append(rules, pr)
	}
	p, err := policy.New(rules, def)
	if err == nil {
		return p, nil
	}
	var problems []error
	for _, e := range unjoin(err) {
		var fe *policy.FieldError
		switch {
		case errors.As(e, &fe) && fe.Rule >= 0:
			problems = append(problems, fmt.Errorf("%w: %s.%s: %w", config.ErrInvalid, config.Where("rules", fe.Rule, fe.Name), fe.Field, fe.Err))
		case errors.As(e, &fe):
			problems = append(problems, fmt.Errorf("%w: %s: %w", config.ErrInvalid, fe.Field, fe.Err))
		default:
			problems = append(problems, fmt.Errorf("%w: rules: %w", config.ErrInvalid, e))
		}
	}
	return nil, errors.Join(problems...)
}

// unjoin lists the errors errors.Join joined, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// cacheHook is a cache counter of m (nil without metrics).
func cacheHook(m *metrics.Metrics, count func(*metrics.Metrics)) func() {
	if m == nil {
		return nil
	}
	return func() { count(m) }
}

// onRefresh is the key set's hook into the metrics (nil without metrics).
// onRejected counts the unsafe keys a pool's JWKS serves (nil without metrics).
func onRejected(m *metrics.Metrics, pool string) func(string) {
	if m == nil {
		return nil
	}
	return m.JWKSRejected(pool)
}

func onRefresh(m *metrics.Metrics, pool string) func(string, int) {
	if m == nil {
		return nil
	}
	return m.JWKSRefresh(pool)
}
