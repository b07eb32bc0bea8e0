// Package policy decides which rules govern a request: rules are tried in order and the first whose match
// holds wins; when none does, the default applies. This is done for every reading of the path that a real
// upstream uses (Readings: Tomcat's ";" parameters, nginx's decoded %2F, Express's case folding, ...), and
// Select returns the rule of each, so that a request is never judged by a rule more lenient than the one
// governing what the upstream serves. A rule says what the request needs (nothing, a valid token, a valid
// token that meets requirements, or never) and which requirements a token must meet.
//
// It is pure: no I/O, no transport, no config. The authorizer asks it which rule applies and whether an
// identity meets the rule's requirements; everything else (tokens, headers, answers) happens in authz.
package policy

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Action is what a rule requires of a request.
type Action uint8

// The actions.
const (
	// Authenticated needs a valid token that meets the rule's requirements. It is the zero value: a rule
	// that says nothing else is the strict one.
	Authenticated Action = iota
	// Allow lets the request through without looking for a token; identity headers are still removed.
	Allow
	// Deny refuses the request (403 rule_denied) whatever it carries.
	Deny
	// Optional sets identity headers from a valid token and lets a request without one through anonymously.
	Optional
	// Login is Authenticated for browsers: a browser navigation without a valid credential is sent to sign
	// in (the browser: config block), anything else without one gets 401 login_required.
	Login
)

var actionNames = [...]string{"authenticated", "allow", "deny", "optional", "login"}

// String returns the action's config spelling.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", a)
}

// ParseAction reads a config spelling; the empty string is Authenticated.
func ParseAction(s string) (Action, error) {
	if s == "" {
		return Authenticated, nil
	}
	if i := slices.Index(actionNames[:], s); i >= 0 {
		return Action(i), nil
	}
	return 0, fmt.Errorf("policy: action %q: want authenticated, login, allow, deny or optional", s)
}

// Match selects requests. Every field that is set must hold; a Match with nothing set matches everything.
type Match struct {
	// Host is an exact host ("api.example.com") or a suffix form ("*.example.com": any name that ends in
	// ".example.com", not example.com itself). Compared case-insensitively, with the request's port and any
	// trailing dot ignored.
	Host string
	// PathExact, PathPrefix and PathRegex are matched against the normalised path (see NormalizePath).
	// PathPrefix is segment-aware: "/admin" matches "/admin", "/admin/" and "/admin/x" but not
	// "/administrator"; a prefix that ends in "/" matches only below it. PathRegex is RE2, anchored at both
	// ends. At most one of the three may be set.
	PathExact, PathPrefix, PathRegex string
	// Methods lists the methods that match, compared case-insensitively.
	Methods []string
	// ContextExtensions must all be present with exactly these values (Envoy's per-route
	// check_settings.context_extensions; the HTTP protocol carries none).
	ContextExtensions map[string]string
}

// Require is what a valid token must also have. Every field that is set must hold.
type Require struct {
	Pools     []string // the token's pool is one of these
	TokenUse  string   // "access" or "id"
	GroupsAny []string // cognito:groups holds at least one of these
	GroupsAll []string // cognito:groups holds all of these
	ScopesAny []string // scope holds at least one of these
	ScopesAll []string // scope holds all of these
	// Claims maps a claim to its allowed values: a string claim must be one of them, a list claim must
	// hold at least one of them. The verifier must keep these claims (see Policy.Claims).
	Claims map[string][]string
}

// Rule is one entry of the policy.
type Rule struct {
	Name    string
	Match   Match
	Action  Action
	Require Require // only with Authenticated
	// AnonymousOnInvalid lets an Optional rule treat an invalid token like no token, as the per-service
	// code this replaces did. Without it an invalid token is refused (401) even on an optional route.
	AnonymousOnInvalid bool
	// DryRun answers the rule's denies as allows marked with the would-be reason (authz.DryRunHeader), still
	// logged and counted as dry_run_<outcome>: a new rule can be rolled out without refusing anyone.
	DryRun bool
}

// DefaultName is the Rule.Name of the default rule.
const DefaultName = "default"

// Policy is an ordered set of compiled rules and a default. It is immutable and safe for concurrent use.
type Policy struct {
	rules  []compiled
	def    *Rule
	claims []string
	// single[i] is the one-rule selection of rule i (the default at len(rules)), shared so that the common
	// case selects without allocating.
	single [][]*Rule
	// long[i] is rule i with TooLong: the selection of a path over MaxReadPath.
	long [][]*Rule
	// foldSensitive: some rule's path or regex tells case apart, so even an all-lower-case path must be
	// matched under its folded reading too.
	foldSensitive bool
}

type compiled struct {
	Rule
	hostSuffix string // ".example.com" for "*.example.com"
	methods    []string
	re         *regexp.Regexp
	// The case-folded forms the folded readings are matched against.
	foldExact, foldPrefix string
	reFold                *regexp.Regexp
}

// FieldError is one problem with one rule: Rule is its index (-1 for the default) and Field the key that is
// wrong, spelt as a config file writes it ("match.host", "require.token_use"), so that whoever maps a file
// onto rules can name the exact key path of the problem.
type FieldError struct {
	Rule  int
	Name  string // the rule's name, "" when it has none
	Field string
	Err   error
}

func (e *FieldError) Error() string {
	if e.Rule < 0 {
		return fmt.Sprintf("policy: %s: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("policy: rule %d (%s): %s: %v", e.Rule, e.Name, e.Field, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// methodRE is an RFC 9110 token: what a method may be.
var methodRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

// New compiles rules and the default action (which may not be Optional). Every problem is reported, each a
// *FieldError, joined.
func New(rules []Rule, def Action) (*Policy, error) {
	var errs []error
	p := &Policy{def: &Rule{Name: DefaultName, Action: def}}
	if def == Optional || def > Login {
		errs = append(errs, &FieldError{Rule: -1, Field: "default", Err: fmt.Errorf("%s: want authenticated, login, allow or deny", def)})
	}
	names := map[string]bool{}
	for i, r := range rules {
		bad := func(field, format string, args ...any) {
			errs = append(errs, &FieldError{Rule: i, Name: r.Name, Field: field, Err: fmt.Errorf(format, args...)})
		}
		switch {
		case r.Name == "":
			bad("name", "a rule needs a name")
		case r.Name == DefaultName:
			bad("name", "%q is reserved for the default", r.Name)
		case names[r.Name]:
			bad("name", "%q is used twice", r.Name)
		}
		names[r.Name] = true
		c := compiled{Rule: r}
		m := r.Match
		if m.Host != "" {
			h := strings.TrimSuffix(strings.ToLower(m.Host), ".")
			if err := checkHost(h); err != nil {
				bad("match.host", "%w", err)
			}
			c.Match.Host = h
			if rest, ok := strings.CutPrefix(h, "*"); ok {
				c.hostSuffix = rest
			}
		}
		set := 0
		for _, pth := range []struct{ key, path string }{{"match.path_exact", m.PathExact}, {"match.path_prefix", m.PathPrefix}} {
			if pth.path == "" {
				continue
			}
			set++
			if err := CheckRulePath(pth.path); err != nil {
				bad(pth.key, "%w", err)
			}
		}
		c.foldExact, c.foldPrefix = foldPath(m.PathExact), foldPath(m.PathPrefix)
		if c.foldExact != m.PathExact || c.foldPrefix != m.PathPrefix {
			p.foldSensitive = true
		}
		if m.PathRegex != "" {
			set++
			re, err := regexp.Compile(`^(?:` + m.PathRegex + `)$`)
			if err != nil {
				bad("match.path_regex", "%w", err)
			}
			c.re = re
			c.reFold, _ = regexp.Compile(`^(?i:` + m.PathRegex + `)$`) // compiles if the above did
			if strings.ToLower(m.PathRegex) != m.PathRegex {
				p.foldSensitive = true // an upper-case letter (or \S, \W...: costs only the fast path)
			}
		}
		if set > 1 {
			bad("match", "set at most one of path_exact, path_prefix and path_regex")
		}
		for _, meth := range m.Methods {
			if !methodRE.MatchString(meth) {
				bad("match.methods", "%q is not a method", meth)
			}
			c.methods = append(c.methods, strings.ToUpper(meth))
		}
		for k := range m.ContextExtensions {
			if k == "" {
				bad("match.context_extensions", "empty key")
			}
		}
		if r.Action > Login {
			bad("action", "unknown action %s", r.Action)
		}
		if r.Action != Authenticated && r.Action != Login && !r.Require.empty() {
			bad("require", "needs action authenticated or login, not %s", r.Action)
		}
		if r.AnonymousOnInvalid && r.Action != Optional {
			bad("optional_invalid", "needs action optional")
		}
		q := r.Require
		if tu := q.TokenUse; tu != "" && tu != "access" && tu != "id" {
			bad("require.token_use", "%q: want access or id", tu)
		}
		for _, l := range []struct {
			key   string
			vals  []string
			scope bool
		}{{"require.groups_any", q.GroupsAny, false}, {"require.groups_all", q.GroupsAll, false},
			{"require.scopes_any", q.ScopesAny, true}, {"require.scopes_all", q.ScopesAll, true}} {
			for _, v := range l.vals {
				if strings.TrimSpace(v) == "" || (l.scope && strings.ContainsAny(v, " \t")) {
					bad(l.key, "%q is empty or has spaces", v)
				}
			}
		}
		for _, claim := range slices.Sorted(maps.Keys(q.Claims)) {
			switch {
			case claim == "":
				bad("require.claims", "empty claim name")
			case len(q.Claims[claim]) == 0:
				bad("require.claims["+claim+"]", "list at least one allowed value")
			}
			p.claims = append(p.claims, claim)
		}
		p.rules = append(p.rules, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.Sort(p.claims)
	p.claims = slices.Compact(p.claims)
	p.single = make([][]*Rule, len(p.rules)+1)
	for i := range p.rules {
		p.single[i] = []*Rule{&p.rules[i].Rule}
	}
	p.single[len(p.rules)] = []*Rule{p.def}
	p.long = make([][]*Rule, len(p.rules)+1)
	for i := range p.long {
		p.long[i] = []*Rule{p.single[i][0], TooLong}
	}
	return p, nil
}

// CheckRulePath refuses a path_exact or path_prefix that some reading of a request could never equal: one
// not in normal form (requests are matched by their normal form), and one that decoding changes: a ";"
// (Tomcat cuts it), a "\" (a slash to IIS), or an escape that decodes to a character a path may hold
// unescaped ("%2F" is "/" to nginx, "%21" is "!" to everyone). Such a rule would be matched under some
// readings of a request and not others. The error says what to write instead.
func CheckRulePath(pth string) error {
	if n := NormalizePath(pth); n != pth {
		return fmt.Errorf("%q: requests are matched by their normalised path, so this never matches; write %q", pth, n)
	}
	if strings.ContainsAny(pth, ";\\") {
		return fmt.Errorf("%q: a rule path may not hold \";\" or \"\\\": upstreams read them as parameters or slashes", pth)
	}
	if d := NormalizePath(escapePath(decodeAll(pth))); d != pth {
		return fmt.Errorf("%q: upstreams that decode it serve %q; write that", pth, d)
	}
	return nil
}

// hostRE is a lower-case host name (or IPv4 address), optionally behind "*." for its subdomains.
var hostRE = regexp.MustCompile(`^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$`)

// checkHost accepts a lower-case host name, or "*." followed by one, without a port. IPv6 literals are
// refused: the config check used to accept "[::1]", which then never matched (a request's host loses its
// brackets) and which this check refused at start-up.
func checkHost(h string) error {
	if !hostRE.MatchString(h) {
		return fmt.Errorf("%q: want a host name such as api.example.com or *.example.com, without port", h)
	}
	return nil
}

// Claims names every claim a rule requires: the verifier must keep them (token.WithClaims).
func (p *Policy) Claims() []string { return slices.Clone(p.claims) }

// Request is what matching needs of a request.
type Request struct {
	Method            string
	Host              string // may carry a port
	Path              string // as received: may carry a query string; normalised here
	ContextExtensions map[string]string
}

// MaxReadPath bounds the path (without query) whose readings are computed: a longer one with anything to
// cut, decode or fold is judged by its normal reading's rule and TooLong, so it is refused. Each reading
// costs time linear in the path; no upstream listed in Readings takes request lines much over 8 KiB
// (nginx and Tomcat answer 414 or 400), so nothing they serve is refused.
const MaxReadPath = 8 << 10

// TooLong is the rule that refuses a path over MaxReadPath that has more than one reading.
var TooLong = &Rule{Name: "path_too_long", Action: Deny}

// Match returns the first rule that matches the normal reading of r (NormalizePath), or the default rule.
// It is what an upstream that reads paths as RFC 3986 does would select; requests are judged by Select,
// which also looks at every other reading. The result is shared: do not modify it.
func (p *Policy) Match(r *Request) *Rule {
	return p.rule(p.index(r, normalizeHost(r.Host), Reading{Path: NormalizePath(r.Path)}))
}

// Select returns every rule that one of the readings of r's path selects (see Readings): the rule of the
// normal reading first, then the others in policy order, each once, the default rule last among them. A
// request must be judged at least as strictly as each of them: when they differ, the path means different
// resources to different upstreams, and the one behind this proxy may serve any of them.
//
// The result is shared: do not modify it. It has one element unless the path is ambiguous, and for a path
// in normal form with nothing to fold, decode or cut it is found without allocating.
func (p *Policy) Select(r *Request) []*Rule {
	host := normalizeHost(r.Host)
	raw := cutQuery(r.Path)
	if plainPath(raw) && (!p.foldSensitive || !foldable(raw)) {
		return p.single[p.index(r, host, Reading{Path: raw})]
	}
	if len(raw) > MaxReadPath {
		return p.long[p.index(r, host, Reading{Path: NormalizePath(raw)})]
	}
	readings := Readings(raw)
	var buf [8]int
	idx := buf[:0]
	for _, rd := range readings {
		if i := p.index(r, host, rd); !slices.Contains(idx, i) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 1 {
		return p.single[idx[0]]
	}
	slices.Sort(idx[1:]) // the normal reading's rule stays first; the default (the highest index) last
	out := make([]*Rule, len(idx))
	for k, i := range idx {
		out[k] = p.rule(i)
	}
	return out
}

// MatchReading returns the first rule that matches r under one reading of its path (see Readings), or
// the default rule: the rule an upstream that reads the path so would have the request judged by.
func (p *Policy) MatchReading(r *Request, rd Reading) *Rule {
	return p.rule(p.index(r, normalizeHost(r.Host), rd))
}

// index is the position of the first rule that matches reading rd of r, or len(p.rules) for the default.
func (p *Policy) index(r *Request, host string, rd Reading) int {
	for i := range p.rules {
		if p.rules[i].matches(r, host, rd) {
			return i
		}
	}
	return len(p.rules)
}

func (p *Policy) rule(i int) *Rule {
	if i == len(p.rules) {
		return p.def
	}
	return &p.rules[i].Rule
}

func (c *compiled) matches(r *Request, host string, rd Reading) bool {
	m := &c.Match
	switch {
	case c.hostSuffix != "":
		if !strings.HasSuffix(host, c.hostSuffix) || len(host) == len(c.hostSuffix) {
			return false
		}
	case m.Host != "" && host != m.Host:
		return false
	}
	exact, prefix, re := m.PathExact, m.PathPrefix, c.re
	if rd.Folded {
		exact, prefix, re = c.foldExact, c.foldPrefix, c.reFold
	}
	path := rd.Path
	switch {
	case exact != "" && path != exact:
		return false
	case prefix != "" && !hasPathPrefix(path, prefix):
		return false
	case re != nil && !re.MatchString(path):
		return false
	}
	if len(c.methods) > 0 && !slices.ContainsFunc(c.methods, func(meth string) bool { return strings.EqualFold(meth, r.Method) }) {
		return false
	}
	for k, v := range m.ContextExtensions {
		if got, ok := r.ContextExtensions[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// hasPathPrefix is a segment-aware prefix test: prefix "/a" matches "/a" and "/a/..." but not "/ab".
func hasPathPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

// normalizeHost lower-cases the host and drops its port, the brackets of an IPv6 literal and any trailing
// dot. (By hand rather than net.SplitHostPort: this package stays free of the net stack.)
func normalizeHost(h string) string {
	if strings.HasPrefix(h, "[") {
		if end := strings.IndexByte(h, ']'); end > 0 {
			h = h[1:end] // "[::1]:80" and "[::1]"
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		h = h[:i] // one colon: host:port. More than one is an unbracketed IPv6 literal: no port to drop.
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

func (q *Require) empty() bool {
	return len(q.Pools) == 0 && q.TokenUse == "" && len(q.GroupsAny) == 0 && len(q.GroupsAll) == 0 &&
		len(q.ScopesAny) == 0 && len(q.ScopesAll) == 0 && len(q.Claims) == 0
}

// Subject is what requirements are checked against: the facts of a verified token.
type Subject struct {
	Pool     string
	TokenUse string
	Groups   []string
	Scope    string // space-separated, as in the token
	Claims   map[string][]string
}

// Unmet names the first requirement a Subject fails.
type Unmet uint8

// The unmet requirements, in the order they are checked.
const (
	Met Unmet = iota
	UnmetPool
	UnmetTokenUse
	UnmetGroup
	UnmetScope
	UnmetClaim
)

// Check returns the first requirement s fails, or Met. Pool and token use come first: a token from the
// wrong pool or of the wrong kind is refused whatever groups it claims.
func (q *Require) Check(s *Subject) Unmet {
	switch {
	case len(q.Pools) > 0 && !slices.Contains(q.Pools, s.Pool):
		return UnmetPool
	case q.TokenUse != "" && q.TokenUse != s.TokenUse:
		return UnmetTokenUse
	case len(q.GroupsAny) > 0 && !slices.ContainsFunc(q.GroupsAny, func(g string) bool { return slices.Contains(s.Groups, g) }):
		return UnmetGroup
	case !allIn(q.GroupsAll, func(g string) bool { return slices.Contains(s.Groups, g) }):
		return UnmetGroup
	case len(q.ScopesAny) > 0 && !slices.ContainsFunc(q.ScopesAny, func(sc string) bool { return hasScope(s.Scope, sc) }):
		return UnmetScope
	case !allIn(q.ScopesAll, func(sc string) bool { return hasScope(s.Scope, sc) }):
		return UnmetScope
	}
	for claim, allowed := range q.Claims {
		if !slices.ContainsFunc(s.Claims[claim], func(v string) bool { return slices.Contains(allowed, v) }) {
			return UnmetClaim
		}
	}
	return Met
}

func allIn(want []string, has func(string) bool) bool {
	for _, w := range want {
		if !has(w) {
			return false
		}
	}
	return true
}

// hasScope reports whether the space-separated scope list holds want (RFC 6749 §3.3), without allocating.
func hasScope(scope, want string) bool {
	for s := range strings.FieldsSeq(scope) {
		if s == want {
			return true
		}
	}
	return false
}
