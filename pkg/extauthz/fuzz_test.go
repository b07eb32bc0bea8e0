package extauthz_test

import (
	"strings"
	"testing"

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
