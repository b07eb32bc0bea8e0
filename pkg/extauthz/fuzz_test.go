package extauthz_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// FuzzCheck drives the whole Check (translation, extraction, verification, response) with arbitrary
// request parts. It must never panic, and must allow only the one validly signed token it was seeded with.
func FuzzCheck(f *testing.F) {
	fx := newFixture(f)
	valid := fx.iss.MustMint(f, at(fx.iss.Access()))
	srv := extauthz.NewServer(func() extauthz.Checker { return fx.a })
	f.Add("Bearer "+valid, "", "GET", "/")
	f.Add("bearer  "+valid+" ", "x-auth-sub=evil", "POST", "/a?b=c")
	f.Add("Bearer "+valid+","+"Bearer "+valid, "", "GET", "/")
	f.Add("Bearer "+tamper(valid), "", "GET", "/")
	f.Add("Basic dXNlcjpwYXNz", "cookie=id_token="+valid, "GET", "/")
	f.Add("Bearer eyJhbGciOiJub25lIn0.e30.", "", "GET", "/../admin")
	f.Fuzz(func(t *testing.T, authorization, extra, method, path string) {
		headers := map[string]string{"authorization": authorization}
		if k, v, ok := strings.Cut(extra, "="); ok {
			headers[strings.ToLower(k)] = v
		}
		req := extauthz.Probe{Method: method, Path: path, Host: "h", Headers: headers}.CheckRequest()
		resp, err := srv.Check(t.Context(), req)
		if err != nil {
			t.Fatalf("Check returned a gRPC error: %v", err)
		}
		s := extauthz.Summarize(resp)
		if !s.Allowed {
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
