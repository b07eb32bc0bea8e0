package policy_test

import (
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cognito-authz/cognito-authz/pkg/policy"
)

// bypassRules is a policy an attacker would like to walk around: a public area, an admin area, a closed
// area, and an exact and a regex rule.
var bypassRules = []policy.Rule{
	{Name: "public", Match: policy.Match{PathPrefix: "/public"}, Action: policy.Allow},
	{Name: "admin", Match: policy.Match{PathPrefix: "/admin"}, Require: policy.Require{GroupsAny: []string{"admins"}}},
	{Name: "secrets", Match: policy.Match{PathPrefix: "/secrets"}, Action: policy.Deny},
	{Name: "status", Match: policy.Match{PathExact: "/status"}, Action: policy.Allow},
	{Name: "items", Match: policy.Match{PathRegex: `/items/[0-9]+`}, Action: policy.Optional},
}

func names(rules []*policy.Rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.Name
	}
	return out
}

// TestSelectBypasses: every spelling of a protected path that some upstream serves as that path selects
// the protected rule, whatever else it selects. Each case names the upstream that reads it so.
func TestSelectBypasses(t *testing.T) {
	t.Parallel()
	p, err := policy.New(bypassRules, policy.Authenticated)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want []string // exactly these rules, the normal reading's first
	}{
		// Tomcat / Spring MVC: ";…" is cut from every segment, then dot segments are resolved.
		{name: "dotdot_param_climbs", path: "/public/..;/admin/users", want: []string{"public", "admin"}},
		{name: "dotdot_param_with_value", path: "/public/..;x=1/admin", want: []string{"public", "admin"}},
		{name: "param_on_protected_segment", path: "/admin;x=1/users", want: []string{"default", "admin"}},
		{name: "param_on_last_segment", path: "/admin;jsessionid=1", want: []string{"default", "admin"}},
		{name: "param_only_segment", path: "/public/;/../secrets", want: []string{"public", "secrets"}},
		{name: "encoded_dotdot_param", path: "/public/%2e%2e;/admin", want: []string{"public", "admin"}},
		{name: "param_on_exact", path: "/status;x", want: []string{"default", "status"}},
		// nginx, Caddy: %2F and %5C are decoded before routing; IIS reads "\" as "/".
		{name: "encoded_slash_climbs", path: "/public/..%2Fadmin/x", want: []string{"public", "admin"}},
		{name: "encoded_slash_lower_hex", path: "/public/..%2fadmin/x", want: []string{"public", "admin"}},
		{name: "encoded_slash_into_protected", path: "/admin%2Fx", want: []string{"default", "admin"}},
		{name: "encoded_backslash_climbs", path: "/public/..%5Cadmin", want: []string{"public", "admin"}},
		{name: "backslash_climbs", path: `/public\..\admin`, want: []string{"default", "admin"}},
		{name: "mixed_slashes", path: `/public/..\..%2F/admin`, want: []string{"public", "admin"}},
		{name: "encoded_everything", path: "/public%2F%2E%2E%2Fadmin", want: []string{"default", "admin"}},
		// A decoding proxy in front of a decoding upstream: two rounds.
		{name: "double_encoded_slash", path: "/public/..%252Fadmin", want: []string{"public", "admin"}},
		{name: "double_encoded_dots", path: "/public/%252e%252e/admin", want: []string{"public", "admin"}},
		{name: "triple_encoded_slash", path: "/public/..%25252Fadmin", want: []string{"public", "admin"}},
		// Combinations: a decoder in front of Tomcat ("%3B" becomes ";"), ";" with "%2F".
		{name: "encoded_semicolon", path: "/public/..%3B/admin", want: []string{"public", "admin"}},
		{name: "encoded_slash_and_param", path: "/public;x/..%2Fadmin", want: []string{"default", "public", "admin"}},
		{name: "param_then_encoded_slash", path: "/public/..;%2F..%2Fadmin", want: []string{"public", "admin", "default"}},
		{name: "double_encoded_semicolon", path: "/public/..%253B/admin", want: []string{"public", "admin"}},
		// Express, Caddy, ASP.NET / IIS: case-insensitive; Windows cuts trailing dots and spaces.
		{name: "upper_case", path: "/ADMIN/users", want: []string{"default", "admin"}},
		{name: "mixed_case", path: "/Admin", want: []string{"default", "admin"}},
		{name: "upper_case_exact", path: "/STATUS", want: []string{"default", "status"}},
		{name: "upper_case_regex", path: "/ITEMS/12", want: []string{"default", "items"}},
		{name: "long_s_folds_to_s", path: "/%C5%BFecrets", want: []string{"default", "secrets"}},
		{name: "upper_and_param", path: "/ADMIN;x/users", want: []string{"default", "admin"}},
		{name: "upper_and_encoded_slash", path: "/public/..%2FADMIN", want: []string{"public", "admin", "default"}},
		{name: "trailing_dot", path: "/admin./users", want: []string{"default", "admin"}},
		{name: "trailing_space", path: "/admin%20/users", want: []string{"default", "admin"}},
		{name: "dotdot_space_climbs", path: "/public/..%20/secrets", want: []string{"public", "secrets"}},
		// Routers that match the raw path without resolving dot segments (Express app.use("/admin")).
		{name: "raw_dotdot_under_protected", path: "/admin/../public/x", want: []string{"public", "admin"}},
		// The normal form, and a raw router that finds no route for the raw spelling.
		{name: "dotdot", path: "/public/../admin", want: []string{"admin", "public"}},
		{name: "double_slash", path: "//admin//x", want: []string{"admin", "default"}},
		{name: "unreserved_escape", path: "/%61dmin", want: []string{"admin", "default"}},
		{name: "query_is_not_path", path: "/public?x=/../admin", want: []string{"public"}},
		{name: "fragment_is_not_path", path: "/public#/../../admin", want: []string{"public"}},
		// Benign paths have one reading that matters.
		{name: "plain_public", path: "/public/css/app.css", want: []string{"public"}},
		{name: "plain_admin", path: "/admin/users", want: []string{"admin"}},
		{name: "session_param_on_public", path: "/public/a;jsessionid=1", want: []string{"public"}},
		{name: "upper_case_public", path: "/public/Logo.PNG", want: []string{"public"}},
		{name: "encoded_space_public", path: "/public/a%20b", want: []string{"public"}},
		{name: "not_a_prefix", path: "/administrator", want: []string{"default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := names(p.Select(&policy.Request{Method: "GET", Path: tt.path}))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Select(%q) mismatch (-want +got):\n%s", tt.path, diff)
			}
		})
	}
}

// TestReadings pins the readings of a few paths: name and path of each, in order.
func TestReadings(t *testing.T) {
	t.Parallel()
	type rd = policy.Reading
	tests := []struct {
		name, path string
		want       []rd
	}{
		{name: "plain", path: "/a/b?x", want: []rd{{Path: "/a/b", Name: "normal"}, {Path: "/a/b", Folded: true, Name: "folded-normal"}}},
		{name: "digits_only", path: "/1/2", want: []rd{{Path: "/1/2", Name: "normal"}}},
		{name: "tomcat", path: "/p/..;/a", want: []rd{{Path: "/p/..;/a", Name: "normal"}, {Path: "/a", Name: "params"},
			{Path: "/p/..;/a", Folded: true, Name: "folded-normal"}, {Path: "/a", Folded: true, Name: "folded-params"}}},
		{name: "raw_dots", path: "/A/../b", want: []rd{{Path: "/b", Name: "normal"}, {Path: "/A/../b", Name: "raw"},
			{Path: "/b", Folded: true, Name: "folded-normal"}, {Path: "/a/../b", Folded: true, Name: "folded-raw"}}},
		{name: "double_encoded", path: "/p/..%252F1", want: []rd{{Path: "/p/..%252F1", Name: "normal"}, {Path: "/1", Name: "decoded"},
			{Path: "/p/..%252f1", Folded: true, Name: "folded-normal"}}}, // "/1" has nothing to fold
		{name: "windows", path: "/1/..%20/2", want: []rd{{Path: "/1/..%20/2", Name: "normal"}, {Path: "/1/..%20/2", Folded: true, Name: "folded-normal"},
			{Path: "/2", Folded: true, Name: "folded-trimmed-normal"}}},
		// Express folds case but keeps "...", a plain segment; Windows trims it to "..": both readings count.
		{name: "case_and_three_dots", path: "/ADMIN/...", want: []rd{{Path: "/ADMIN/...", Name: "normal"}, {Path: "/admin/...", Folded: true, Name: "folded-normal"},
			{Path: "/", Folded: true, Name: "folded-trimmed-normal"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, policy.Readings(tt.path)); diff != "" {
				t.Errorf("Readings(%q) mismatch (-want +got):\n%s", tt.path, diff)
			}
		})
	}
}

// TestSelectFoldSensitiveRule: a rule with upper-case letters is matched by the folded reading of an
// all-lower-case path too (Express routes "/reports" to app.get("/Reports")).
func TestSelectFoldSensitiveRule(t *testing.T) {
	t.Parallel()
	p, err := policy.New([]policy.Rule{
		{Name: "reports", Match: policy.Match{PathPrefix: "/Reports"}, Action: policy.Deny},
	}, policy.Allow)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/reports", "/REPORTS/x", "/Reports"} {
		if got := names(p.Select(&policy.Request{Path: path})); !slices.Contains(got, "reports") {
			t.Errorf("Select(%q) = %v, want it to hold reports", path, got)
		}
	}
}

// TestRulePathsMustBeDecoded: a rule path some reading could never equal is refused with what to write.
func TestRulePathsMustBeDecoded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path, want string
	}{
		{name: "encoded_slash", path: "/a%2Fb", want: `serve "/a/b"`},
		{name: "encoded_subdelim", path: "/a%21", want: `serve "/a!"`},
		{name: "semicolon", path: "/a;b", want: "may not hold"},
		{name: "backslash", path: `/a\b`, want: "may not hold"},
		{name: "not_normal", path: "/a/../b", want: `write "/b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := policy.CheckRulePath(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckRulePath(%q) = %v, want an error saying %q", tt.path, err, tt.want)
			}
		})
	}
	for _, ok := range []string{"/admin", "/admin/", "/a%20b", "/100%25", "/caf%C3%A9", "/a:b@c!"} {
		if err := policy.CheckRulePath(ok); err != nil {
			t.Errorf("CheckRulePath(%q) = %v, want nil", ok, err)
		}
	}
}

// TestSelectLongPath: a path over MaxReadPath with more than one reading is refused (TooLong is selected);
// a plain one of any length is judged as usual.
func TestSelectLongPath(t *testing.T) {
	t.Parallel()
	p, err := policy.New(bypassRules, policy.Authenticated)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("/a", policy.MaxReadPath/2)
	if got := names(p.Select(&policy.Request{Path: "/public" + long})); !slices.Equal(got, []string{"public"}) {
		t.Errorf("plain long path: Select = %v, want [public]", got)
	}
	if got := names(p.Select(&policy.Request{Path: "/public/..;" + long})); !slices.Equal(got, []string{"public", policy.TooLong.Name}) {
		t.Errorf("long path with a parameter: Select = %v, want [public path_too_long]", got)
	}
}

// TestSelectPlainPathAllocatesNothing: the common path in normal form selects without allocating.
func TestSelectPlainPathAllocatesNothing(t *testing.T) {
	p, err := policy.New(bypassRules, policy.Authenticated)
	if err != nil {
		t.Fatal(err)
	}
	r := &policy.Request{Method: "GET", Host: "api.example.com", Path: "/admin/users?page=2"}
	if n := testing.AllocsPerRun(100, func() { p.Select(r) }); n != 0 {
		t.Errorf("Select allocates %.0f times on a plain path", n)
	}
}

// Reference readings, written with the standard library and independent of the package's own code: each
// is how one family of upstreams reads a path.

// cleanKeep is path.Clean, keeping a trailing slash as RFC 3986 dot-segment removal does.
func cleanKeep(p string) string {
	c := path.Clean("/" + p)
	if c != "/" && (strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")) {
		c += "/"
	}
	return c
}

func refTomcat(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		s, _, _ = strings.Cut(s, ";")
		segs[i] = strings.NewReplacer("%2e", ".", "%2E", ".").Replace(s)
	}
	return cleanKeep(strings.Join(segs, "/"))
}

func refNginx(p string) (string, bool) {
	d, err := url.PathUnescape(p)
	if err != nil {
		return "", false
	}
	return cleanKeep(d), true
}

func refIIS(p string) (string, bool) {
	d, err := url.PathUnescape(strings.ReplaceAll(p, `\`, "/"))
	if err != nil {
		return "", false
	}
	d = strings.ReplaceAll(d, `\`, "/")
	return strings.ToLower(cleanKeep(d)), true
}

// refMatch is the first bypassRules rule whose path matches the decoded path d, as a router that sees d
// would route it (case-insensitively if fold): a plain reimplementation of prefix, exact and regex.
func refMatch(d string, fold bool) string {
	for _, r := range bypassRules {
		m := r.Match
		prefix, exact := m.PathPrefix, m.PathExact
		if fold {
			d, prefix, exact = strings.ToLower(d), strings.ToLower(prefix), strings.ToLower(exact)
		}
		switch {
		case prefix != "" && (d == prefix || strings.HasPrefix(d, prefix+"/")):
			return r.Name
		case exact != "" && d == exact:
			return r.Name
		case m.PathRegex != "":
			flags := ""
			if fold {
				flags = "(?i)"
			}
			if regexp.MustCompile(`^` + flags + `(?:` + m.PathRegex + `)$`).MatchString(d) {
				return r.Name
			}
		}
	}
	return policy.DefaultName
}

// FuzzSelect: for any path, the rules Select returns include the rule that each reference upstream (Go
// net/http's path.Clean, Tomcat, nginx and Caddy decoding, Caddy and IIS folding, Express on the raw path)
// would route it to, so a decision that honours every selected rule is never more lenient than the rule of
// what the upstream serves. Readings are in normal form and the first one is the normal reading.
func FuzzSelect(f *testing.F) {
	p, err := policy.New(bypassRules, policy.Authenticated)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/public/..;/admin/users", "/admin;x=1/users", "/ADMIN/users", "/public/..%2Fadmin/x", "/admin%2Fx",
		`/public\..\admin`, "/public/..%252Fadmin", "/public/..%3B/admin", "/admin./x", "/%C5%BFecrets", "/items/1", "/STATUS",
		"/public/%2e%2e;/admin", "//admin", "/a/./b/../../..", "%", "/%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		raw, _, _ = strings.Cut(raw, "?")
		raw, _, _ = strings.Cut(raw, "#")
		got := names(p.Select(&policy.Request{Path: raw}))
		rs := policy.Readings(raw)
		if rs[0].Name != "normal" || rs[0].Path != policy.NormalizePath(raw) {
			t.Fatalf("first reading of %q is %+v, want the normal one", raw, rs[0])
		}
		for _, r := range rs {
			if !strings.HasSuffix(r.Name, "raw") && policy.NormalizePath(r.Path) != r.Path {
				t.Fatalf("reading %s of %q is %q: not in normal form", r.Name, raw, r.Path)
			}
		}
		want := map[string]string{
			"normal":  refMatch(policy.NormalizePath(raw), false),
			"tomcat":  refMatch(refTomcat(raw), false),
			"raw":     refMatch("/"+strings.TrimPrefix(raw, "/"), false),
			"express": refMatch("/"+strings.TrimPrefix(raw, "/"), true),
		}
		if d, ok := refNginx(raw); ok && !strings.Contains(d, "%") { // a decoded "%" would be read again
			want["nginx"] = refMatch(d, false)
			want["caddy"] = refMatch(d, true)
		}
		if d, ok := refIIS(raw); ok && !strings.ContainsAny(d, "% ") && !strings.Contains(d, "./") && !strings.HasSuffix(d, ".") {
			want["iis"] = refMatch(d, true)
		}
		for upstream, rule := range want {
			if !slices.Contains(got, rule) {
				t.Fatalf("path %q: %s routes it to rule %q, but Select = %v (readings %+v)", raw, upstream, rule, got, rs)
			}
		}
	})
}

// BenchmarkSelect measures rule selection on a plain path (one reading), a typical ambiguous one, and a
// hostile one (long, every kind of escape and parameter), against a policy with prefix, exact and regex rules.
func BenchmarkSelect(b *testing.B) {
	p, err := policy.New(bypassRules, policy.Authenticated)
	if err != nil {
		b.Fatal(err)
	}
	hostile := "/" + strings.Repeat("Pub%252Flic;x=1/..%5C..;/%2e%2e/", 64) + "admin"
	for _, bc := range []struct{ name, path string }{
		{"plain", "/admin/users/42?page=2"},
		{"ambiguous", "/public/..;/admin/users"},
		{"hostile_2KiB", hostile},
		{"hostile_8KiB", strings.Repeat(hostile, 4)[:policy.MaxReadPath]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := &policy.Request{Method: "GET", Host: "api.example.com", Path: bc.path}
			b.ReportAllocs()
			for b.Loop() {
				p.Select(r)
			}
		})
	}
}
