package extauthz_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// FuzzCheck drives the whole Check (translation, extraction, verification, response) with arbitrary
// request parts. It must never panic, and must allow only the one validly signed token it was seeded with.
func FuzzCheck(f *testing.F) {
	fx := newFixture(f)
	valid := fx.iss.MustMint(f, at(fx.iss.Access()))
	srv := extauthz.NewServer(fx.a)
	f.Add("Bearer "+valid, "", "GET", "/")
	f.Add("bearer  "+valid+" ", "x-auth-sub=evil", "POST", "/a?b=c")
	f.Add("Bearer "+valid+","+"Bearer "+valid, "", "GET", "/")
	f.Add("Bearer "+testkit.Tamper(valid), "", "GET", "/")
	f.Add("Basic dXNlcjpwYXNz", "cookie=id_token="+valid, "GET", "/")
	f.Add("Bearer eyJhbGciOiJub25lIn0.e30.", "", "GET", "/../admin")
	f.Fuzz(func(t *testing.T, authorization, extra, method, path string) {
		headers := map[string]string{"authorization": authorization}
		if k, v, ok := strings.Cut(extra, "="); ok {
			headers[strings.ToLower(k)] = v
		}
		req := extauthz.Probe{Method: method, Path: path, Host: "h", Headers: headers}.CheckRequest()
		raw, err := srv.Check(t.Context(), req)
		if err != nil {
			t.Fatalf("Check returned a gRPC error: %v", err)
		}
		resp := decode(t, raw)
		s := extauthz.Summarize(resp)
		if !s.Allowed {
			if s.HTTPStatus == 400 && s.Reason == "identity_spoofed" && strings.Contains(extra, "_") {
				return // a look-alike identity header (x_auth_sub)
			}
			if s.HTTPStatus != 401 && s.HTTPStatus != 503 {
				t.Fatalf("deny with HTTP %d", s.HTTPStatus)
			}
			return
		}
		got, err := token.Extract(token.HeaderMap(headers), []token.Source{token.BearerSource}, 8<<10)
		if err != nil || got != valid {
			t.Fatalf("allowed a request whose token is not the valid one: %q", authorization)
		}
		if resp.GetOkResponse() == nil {
			t.Fatal("allowed without an OkHttpResponse")
		}
	})
}

// FuzzHTTPForwarded drives the forwarded-header translation of every family with arbitrary header values.
// It never panics; an accepted request carries a path that starts with "/" (or is "*") and a method that is
// the trusted header's; a request carrying both families is never accepted by any family.
func FuzzHTTPForwarded(f *testing.F) {
	f.Add("/admin", "GET", "api.example.com", "", "", uint8(1))
	f.Add("/public/..;/admin", "OPTIONS", "", "/healthz", "", uint8(2))
	f.Add("http://evil/admin?x", "GET", "a, b", "", "POST", uint8(3))
	f.Add("", "", "", "/x", "GET", uint8(4))
	f.Add("admin", "GET /x", "", "", "", uint8(0))
	f.Fuzz(func(t *testing.T, fwdURI, fwdMethod, fwdHost, origURI, origMethod string, family uint8) {
		h := http.Header{}
		set := func(k, v string) {
			if v != "" {
				h[k] = []string{v}
			}
		}
		set("X-Forwarded-Uri", fwdURI)
		set("X-Forwarded-Method", fwdMethod)
		set("X-Forwarded-Host", fwdHost)
		set("X-Original-Uri", origURI)
		set("X-Original-Method", origMethod)
		opts := extauthz.HTTPOptions{Forwarded: extauthz.Forwarded(family % 4)}
		if family%5 == 4 {
			opts = extauthz.HTTPOptions{TrustForwarded: true}
		}
		req := httptest.NewRequest("GET", "/check", nil)
		req.Header = h
		r := extauthz.NewHTTPHandler(nil, opts).Request(req)
		bothFamilies := (fwdURI != "" || fwdMethod != "") && (origURI != "" || origMethod != "")
		if opts.Forwarded == extauthz.ForwardedNone && !opts.TrustForwarded {
			if r.Invalid != nil || r.Path != "/check" || r.Method != "GET" {
				t.Fatalf("family none read forwarded headers: %+v", r)
			}
			return
		}
		if r.Invalid != nil {
			return
		}
		if bothFamilies {
			t.Fatalf("%v accepted both families: %+v", opts, r)
		}
		if !strings.HasPrefix(r.Path, "/") && r.Path != "*" {
			t.Fatalf("%v accepted path %q", opts, r.Path)
		}
		if r.Method != "GET" && r.Method != fwdMethod && r.Method != origMethod {
			t.Fatalf("%v: method %q from nowhere", opts, r.Method)
		}
	})
}

// FuzzRawHeaderMap: header_map entries (encode_raw_headers) from any client fold into one value per
// lower-cased name, in order, cookies joined with "; " and other headers with ","; and a cookie sent as
// its own entry is always found, whatever cookie entry came before it.
func FuzzRawHeaderMap(f *testing.F) {
	f.Add("cookie", "a=1", "Cookie", "id_token=x.y.z")
	f.Add("Authorization", "Bearer a", "authorization", "Bearer b")
	f.Add("x-a", "", "X-A", "v")
	f.Add("cookie", "a=1;", "cookie", "id_token=t; b=2")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		hm := []*corev3.HeaderValue{{Key: k1, RawValue: []byte(v1)}, {Key: k2, RawValue: []byte(v2)}}
		r := extauthz.Request(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{Headers: hm}},
		}}})
		l1, l2 := strings.ToLower(k1), strings.ToLower(k2)
		if l1 != l2 {
			if v1 != "" && r.Headers.Get(l1) != v1 || v2 != "" && r.Headers.Get(l2) != v2 {
				t.Fatalf("distinct headers %q=%q %q=%q became %v", k1, v1, k2, v2, r.Headers)
			}
			return
		}
		sep := ","
		if l1 == "cookie" {
			sep = "; "
		}
		want := v1 + sep + v2
		switch {
		case v1 == "":
			want = v2
		case v2 == "":
			want = v1
		}
		if v1 == "" && v2 == "" {
			return
		}
		if got := r.Headers.Get(l1); got != want {
			t.Fatalf("%q entries %q and %q joined as %q, want %q", l1, v1, v2, got, want)
		}
		if l1 == "cookie" && v2 == "id_token=x.y.z" && !strings.Contains(v1, "id_token") {
			if tok, err := token.Extract(r.Headers, []token.Source{{Cookie: "id_token"}}, 8<<10); err != nil || tok != "x.y.z" {
				t.Fatalf("cookie in the second entry after %q: %q, %v", v1, tok, err)
			}
		}
	})
}
