package policy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cognito-authz/cognito-authz/pkg/policy"
)

func TestNormalizePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{name: "root", in: "/", want: "/"},
		{name: "empty", in: "", want: "/"},
		{name: "plain", in: "/api/orders", want: "/api/orders"},
		{name: "trailing_slash_kept", in: "/api/", want: "/api/"},
		{name: "query_dropped", in: "/admin?x=/public", want: "/admin"},
		{name: "fragment_dropped", in: "/admin#/public", want: "/admin"},
		{name: "dotdot_climbs", in: "/public/../admin", want: "/admin"},
		{name: "dotdot_at_end", in: "/a/b/..", want: "/a/"},
		{name: "dotdot_above_root", in: "/../../admin", want: "/admin"},
		{name: "dot_segment", in: "/./admin/./x", want: "/admin/x"},
		{name: "double_slash", in: "//admin//x", want: "/admin/x"},
		{name: "encoded_dotdot_is_dotdot", in: "/public/%2e%2E/admin", want: "/admin"},
		{name: "encoded_unreserved_decoded", in: "/%61dmin", want: "/admin"},
		{name: "encoded_slash_kept", in: "/admin%2fx", want: "/admin%2Fx"},
		{name: "encoded_percent_not_double_decoded", in: "/%252e%252e/admin", want: "/%252e%252e/admin"},
		{name: "malformed_escape_is_a_percent", in: "/a%zz/%", want: "/a%25zz/%25"},
		{name: "decoding_makes_no_new_escape", in: "/%7%41", want: "/%257A"},
		{name: "relative_gets_slash", in: "admin", want: "/admin"},
		{name: "asterisk_form", in: "*", want: "/*"},
		{name: "dotdot_dotdot_slash_mix", in: "/a/.//../b", want: "/b"},
		{name: "dotdot_prefix_not_dotdot", in: "/..a/b", want: "/..a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := policy.NormalizePath(tt.in); got != tt.want {
				t.Errorf("NormalizePath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// rules is the policy the match tests run against: one rule per match kind, and a few for precedence.
var rules = []policy.Rule{
	{Name: "health", Match: policy.Match{PathExact: "/healthz"}, Action: policy.Allow},
	{Name: "preflight", Match: policy.Match{Methods: []string{"OPTIONS"}}, Action: policy.Allow},
	{Name: "public", Match: policy.Match{PathPrefix: "/public"}, Action: policy.Allow},
	{Name: "admin", Match: policy.Match{PathPrefix: "/admin/"}, Require: policy.Require{GroupsAny: []string{"admins"}}},
	{Name: "orders_write", Match: policy.Match{Host: "api.example.com", PathPrefix: "/orders", Methods: []string{"post", "PUT"}},
		Require: policy.Require{ScopesAll: []string{"orders/write"}}},
	{Name: "orders", Match: policy.Match{Host: "api.example.com", PathPrefix: "/orders"}, Action: policy.Optional},
	{Name: "tenants", Match: policy.Match{Host: "*.tenants.example.com"}, Action: policy.Deny},
	{Name: "items", Match: policy.Match{PathRegex: `/items/[0-9]+`}, Action: policy.Optional},
	{Name: "by_route", Match: policy.Match{ContextExtensions: map[string]string{"policy": "admin", "team": "ops"}}, Action: policy.Deny},
}

func TestMatch(t *testing.T) {
	t.Parallel()
	p, err := policy.New(rules, policy.Authenticated)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		req    policy.Request
		want   string
		action policy.Action
	}{
		{name: "path_exact", req: policy.Request{Method: "GET", Path: "/healthz"}, want: "health", action: policy.Allow},
		{name: "path_exact_not_below", req: policy.Request{Method: "GET", Path: "/healthz/x"}, want: "default"},
		{name: "path_exact_with_query", req: policy.Request{Method: "GET", Path: "/healthz?verbose=1"}, want: "health"},
		{name: "method", req: policy.Request{Method: "OPTIONS", Path: "/admin/users"}, want: "preflight"},
		{name: "method_case_insensitive", req: policy.Request{Method: "options", Path: "/x"}, want: "preflight"},
		{name: "prefix_itself", req: policy.Request{Method: "GET", Path: "/public"}, want: "public"},
		{name: "prefix_below", req: policy.Request{Method: "GET", Path: "/public/css/a.css"}, want: "public"},
		{name: "prefix_segment_aware", req: policy.Request{Method: "GET", Path: "/publicity"}, want: "default"},
		{name: "prefix_with_slash_not_itself", req: policy.Request{Method: "GET", Path: "/admin"}, want: "default"},
		{name: "prefix_with_slash_below", req: policy.Request{Method: "GET", Path: "/admin/users"}, want: "admin"},
		{name: "trap_dotdot_leaves_public", req: policy.Request{Method: "GET", Path: "/public/../admin/users"}, want: "admin"},
		{name: "trap_encoded_dotdot_leaves_public", req: policy.Request{Method: "GET", Path: "/public/%2E%2E/admin/users"}, want: "admin"},
		{name: "trap_double_slash", req: policy.Request{Method: "GET", Path: "//admin//users"}, want: "admin"},
		{name: "trap_encoded_slash_is_not_a_slash", req: policy.Request{Method: "GET", Path: "/admin%2Fusers"}, want: "default"},
		{name: "trap_query_cannot_pick_rule", req: policy.Request{Method: "GET", Path: "/secret?/public"}, want: "default"},
		{name: "trap_encoded_letter", req: policy.Request{Method: "GET", Path: "/%61dmin/users"}, want: "admin"},
		{name: "host_and_method", req: policy.Request{Method: "POST", Host: "api.example.com", Path: "/orders/1"}, want: "orders_write"},
		{name: "host_with_port_and_case", req: policy.Request{Method: "put", Host: "API.Example.com:8443", Path: "/orders"}, want: "orders_write"},
		{name: "first_match_wins", req: policy.Request{Method: "GET", Host: "api.example.com", Path: "/orders"}, want: "orders", action: policy.Optional},
		{name: "host_mismatch", req: policy.Request{Method: "GET", Host: "api.example.org", Path: "/orders"}, want: "default"},
		{name: "host_trailing_dot", req: policy.Request{Method: "GET", Host: "api.example.com.", Path: "/orders"}, want: "orders"},
		{name: "host_suffix", req: policy.Request{Method: "GET", Host: "a.b.tenants.example.com", Path: "/"}, want: "tenants", action: policy.Deny},
		{name: "host_suffix_not_apex", req: policy.Request{Method: "GET", Host: "tenants.example.com", Path: "/"}, want: "default"},
		{name: "host_suffix_not_lookalike", req: policy.Request{Method: "GET", Host: "eviltenants.example.com", Path: "/"}, want: "default"},
		{name: "host_ipv6_with_port", req: policy.Request{Method: "GET", Host: "[::1]:80", Path: "/"}, want: "default"},
		{name: "host_suffix_with_port", req: policy.Request{Method: "GET", Host: "X.Tenants.example.com:8443", Path: "/"}, want: "tenants"},
		{name: "regex", req: policy.Request{Method: "GET", Path: "/items/42"}, want: "items"},
		{name: "regex_anchored_end", req: policy.Request{Method: "GET", Path: "/items/42/edit"}, want: "default"},
		{name: "regex_anchored_start", req: policy.Request{Method: "GET", Path: "/x/items/42"}, want: "default"},
		{name: "context_extensions_all", req: policy.Request{Method: "GET", Path: "/", ContextExtensions: map[string]string{"policy": "admin", "team": "ops", "x": "y"}}, want: "by_route"},
		{name: "context_extensions_one_missing", req: policy.Request{Method: "GET", Path: "/", ContextExtensions: map[string]string{"policy": "admin"}}, want: "default"},
		{name: "context_extensions_value_differs", req: policy.Request{Method: "GET", Path: "/", ContextExtensions: map[string]string{"policy": "Admin", "team": "ops"}}, want: "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := p.Match(&tt.req)
			if got.Name != tt.want {
				t.Fatalf("Match(%+v) = %q, want %q", tt.req, got.Name, tt.want)
			}
			if tt.action != 0 && got.Action != tt.action {
				t.Errorf("action = %s, want %s", got.Action, tt.action)
			}
		})
	}
}

func TestMatchDefaults(t *testing.T) {
	t.Parallel()
	for _, def := range []policy.Action{policy.Authenticated, policy.Allow, policy.Deny} {
		p, err := policy.New(nil, def)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Match(&policy.Request{Path: "/x"}); got.Name != policy.DefaultName || got.Action != def {
			t.Errorf("default %s: Match = %+v", def, got)
		}
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		rules []policy.Rule
		def   policy.Action
		want  []string
	}{
		{name: "default_optional", def: policy.Optional, want: []string{"default: optional"}},
		{name: "name_twice", rules: []policy.Rule{{Name: "a"}, {Name: "a"}}, want: []string{"rule 1 (a)"}},
		{name: "name_default", rules: []policy.Rule{{Name: "default"}}, want: []string{"rule 0 (default)"}},
		{name: "bad_regex", rules: []policy.Rule{{Name: "a", Match: policy.Match{PathRegex: "("}}}, want: []string{"path_regex"}},
		{name: "two_paths", rules: []policy.Rule{{Name: "a", Match: policy.Match{PathExact: "/a", PathPrefix: "/a"}}}, want: []string{"at most one"}},
		{name: "path_not_normal", rules: []policy.Rule{{Name: "a", Match: policy.Match{PathPrefix: "/a/../b"}}}, want: []string{"match.path_prefix", `write "/b"`}},
		{name: "name_empty", rules: []policy.Rule{{}}, want: []string{"rule 0 (): name: a rule needs a name"}},
		{name: "host_ipv6_literal", rules: []policy.Rule{{Name: "a", Match: policy.Match{Host: "[::1]"}}}, want: []string{"match.host"}},
		{name: "method_with_space", rules: []policy.Rule{{Name: "a", Match: policy.Match{Methods: []string{"GET POST"}}}}, want: []string{`match.methods: "GET POST" is not a method`}},
		{name: "context_extension_empty_key", rules: []policy.Rule{{Name: "a", Match: policy.Match{ContextExtensions: map[string]string{"": "x"}}}}, want: []string{"match.context_extensions: empty key"}},
		{name: "token_use_any", rules: []policy.Rule{{Name: "a", Require: policy.Require{TokenUse: "any"}}}, want: []string{"require.token_use"}},
		{name: "group_blank", rules: []policy.Rule{{Name: "a", Require: policy.Require{GroupsAll: []string{" "}}}}, want: []string{"require.groups_all"}},
		{name: "scope_with_space", rules: []policy.Rule{{Name: "a", Require: policy.Require{ScopesAny: []string{"a b"}}}}, want: []string{"require.scopes_any"}},
		{name: "claim_without_values", rules: []policy.Rule{{Name: "a", Require: policy.Require{Claims: map[string][]string{"x": nil}}}}, want: []string{"require.claims[x]: list at least one"}},
		{name: "claim_empty_name", rules: []policy.Rule{{Name: "a", Require: policy.Require{Claims: map[string][]string{"": {"x"}}}}}, want: []string{"require.claims: empty claim name"}},
		{name: "host_with_port", rules: []policy.Rule{{Name: "a", Match: policy.Match{Host: "a.com:80"}}}, want: []string{"without port"}},
		{name: "host_inner_wildcard", rules: []policy.Rule{{Name: "a", Match: policy.Match{Host: "a.*.com"}}}, want: []string{"host"}},
		{name: "require_on_allow", rules: []policy.Rule{{Name: "a", Action: policy.Allow, Require: policy.Require{GroupsAny: []string{"x"}}}}, want: []string{"require: needs action authenticated"}},
		{name: "anonymous_not_optional", rules: []policy.Rule{{Name: "a", AnonymousOnInvalid: true}}, want: []string{"needs action optional"}},
		{name: "every_problem_at_once", rules: []policy.Rule{{Name: "a", Match: policy.Match{PathRegex: "("}}, {Name: "a"}},
			want: []string{"path_regex", "rule 1 (a)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := policy.New(tt.rules, tt.def)
			if err == nil {
				t.Fatal("New() succeeded, want an error")
			}
			var fe *policy.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("New() error = %v, want a *policy.FieldError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New() error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestRequireCheck(t *testing.T) {
	t.Parallel()
	alice := &policy.Subject{Pool: "main", TokenUse: "access", Groups: []string{"users", "admins"},
		Scope: "openid orders/read orders/write", Claims: map[string][]string{"custom:tenant": {"acme"}, "roles": {"a", "b"}}}
	tests := []struct {
		name string
		req  policy.Require
		want policy.Unmet
	}{
		{name: "nothing_required", want: policy.Met},
		{name: "pools_allow", req: policy.Require{Pools: []string{"other", "main"}}, want: policy.Met},
		{name: "pools_deny", req: policy.Require{Pools: []string{"other"}}, want: policy.UnmetPool},
		{name: "token_use_allow", req: policy.Require{TokenUse: "access"}, want: policy.Met},
		{name: "token_use_deny", req: policy.Require{TokenUse: "id"}, want: policy.UnmetTokenUse},
		{name: "groups_any_allow", req: policy.Require{GroupsAny: []string{"ops", "admins"}}, want: policy.Met},
		{name: "groups_any_deny", req: policy.Require{GroupsAny: []string{"ops"}}, want: policy.UnmetGroup},
		{name: "groups_all_allow", req: policy.Require{GroupsAll: []string{"admins", "users"}}, want: policy.Met},
		{name: "groups_all_deny", req: policy.Require{GroupsAll: []string{"admins", "ops"}}, want: policy.UnmetGroup},
		{name: "scopes_any_allow", req: policy.Require{ScopesAny: []string{"orders/write", "x"}}, want: policy.Met},
		{name: "scopes_any_deny", req: policy.Require{ScopesAny: []string{"orders"}}, want: policy.UnmetScope},
		{name: "scopes_all_allow", req: policy.Require{ScopesAll: []string{"orders/read", "orders/write"}}, want: policy.Met},
		{name: "scopes_all_deny", req: policy.Require{ScopesAll: []string{"orders/read", "orders/delete"}}, want: policy.UnmetScope},
		{name: "claim_string_allow", req: policy.Require{Claims: map[string][]string{"custom:tenant": {"beta", "acme"}}}, want: policy.Met},
		{name: "claim_string_deny", req: policy.Require{Claims: map[string][]string{"custom:tenant": {"beta"}}}, want: policy.UnmetClaim},
		{name: "claim_list_allow", req: policy.Require{Claims: map[string][]string{"roles": {"b"}}}, want: policy.Met},
		{name: "claim_list_deny", req: policy.Require{Claims: map[string][]string{"roles": {"c"}}}, want: policy.UnmetClaim},
		{name: "claim_absent_deny", req: policy.Require{Claims: map[string][]string{"custom:plan": {"gold"}}}, want: policy.UnmetClaim},
		{name: "pool_checked_before_groups", req: policy.Require{Pools: []string{"other"}, GroupsAny: []string{"ops"}}, want: policy.UnmetPool},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.req.Check(alice); got != tt.want {
				t.Errorf("Check() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestClaims(t *testing.T) {
	t.Parallel()
	p, err := policy.New([]policy.Rule{
		{Name: "a", Require: policy.Require{Claims: map[string][]string{"custom:tenant": {"x"}, "email": {"y"}}}},
		{Name: "b", Require: policy.Require{Claims: map[string][]string{"custom:tenant": {"z"}}}},
	}, policy.Deny)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"custom:tenant", "email"}, p.Claims()); diff != "" {
		t.Errorf("Claims() mismatch (-want +got):\n%s", diff)
	}
}

// FuzzMatch drives normalisation and matching with arbitrary paths, hosts and methods: it never panics,
// the normal form is stable and free of dot segments and empty segments, and a path under /public never
// escapes into the /admin/ rule or the reverse without its normal form saying so.
func FuzzMatch(f *testing.F) {
	p, err := policy.New(rules, policy.Authenticated)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/", "", "/public/../admin/x", "//admin//x", "/admin%2Fx", "/%2e%2e/%2E", "/a/./b/../../..",
		"/items/1?x", "*", "%", "/%zz/%2", "/..%2f..", "/a#b/../c"} {
		f.Add(s, "api.example.com:443", "GET")
	}
	f.Fuzz(func(t *testing.T, path, host, method string) {
		n := policy.NormalizePath(path)
		if !strings.HasPrefix(n, "/") || strings.Contains(n, "//") || strings.Contains(n, "/../") || strings.Contains(n, "/./") ||
			strings.HasSuffix(n, "/..") || strings.HasSuffix(n, "/.") || strings.ContainsAny(n, "?#") {
			t.Fatalf("NormalizePath(%q) = %q: not normal", path, n)
		}
		if again := policy.NormalizePath(n); again != n {
			t.Fatalf("NormalizePath not idempotent: %q → %q → %q", path, n, again)
		}
		r := p.Match(&policy.Request{Method: method, Host: host, Path: path})
		// The rule chosen for the raw path is the rule chosen for its normal form: nothing but the normal
		// form decides.
		if r2 := p.Match(&policy.Request{Method: method, Host: host, Path: n}); r2 != r {
			t.Fatalf("path %q matched %q but its normal form %q matched %q", path, r.Name, n, r2.Name)
		}
		if r.Name == "public" && !(n == "/public" || strings.HasPrefix(n, "/public/")) {
			t.Fatalf("path %q (normal %q) matched public", path, n)
		}
	})
}
