package devissuer_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// code signs in through the login form and returns the code the redirect carries.
func code(t *testing.T, iss *devissuer.Issuer, params url.Values) string {
	t.Helper()
	form := url.Values{"response_type": {"code"}, "client_id": {iss.ClientID}, "redirect_uri": {"https://app.example.com/cb"},
		"state": {"st"}, "username": {"alice"}, "password": {"pw"}}
	for k, v := range params {
		form[k] = v
	}
	resp, err := noFollow.PostForm(iss.DomainURL()+"/oauth2/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("state") != "st" {
		t.Fatalf("authorize POST = %d %q", resp.StatusCode, loc)
	}
	return loc.Query().Get("code")
}

func TestTokenEndpoint(t *testing.T) {
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	tests := []struct {
		name     string
		secret   string
		authz    url.Values
		token    url.Values
		basic    [2]string
		wantCode string // "" is success
	}{
		{name: "pkce_ok", authz: url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}, token: url.Values{"code_verifier": {verifier}}},
		{name: "pkce_wrong_verifier", authz: url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}, token: url.Values{"code_verifier": {strings.Repeat("w", 43)}}, wantCode: "invalid_grant"},
		{name: "pkce_missing_verifier", authz: url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}, wantCode: "invalid_grant"},
		{name: "redirect_uri_mismatch", token: url.Values{"redirect_uri": {"https://app.example.com/other"}}, wantCode: "invalid_grant"},
		{name: "unknown_code", token: url.Values{"code": {"nope"}}, wantCode: "invalid_grant"},
		{name: "secret_basic_ok", secret: "s3", basic: [2]string{devissuer.DefaultClientID, "s3"}},
		{name: "secret_wrong", secret: "s3", basic: [2]string{devissuer.DefaultClientID, "s4"}, wantCode: "invalid_client"},
		{name: "secret_missing", secret: "s3", wantCode: "invalid_client"},
		{name: "unsupported_grant", token: url.Values{"grant_type": {"password"}}, wantCode: "unsupported_grant_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			iss := testkit.Start(t)
			iss.SetClientSecret(tt.secret)
			c := code(t, iss, tt.authz)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {"https://app.example.com/cb"}, "client_id": {iss.ClientID}}
			for k, v := range tt.token {
				form[k] = v
			}
			post := func() (int, map[string]any) {
				req, _ := http.NewRequest(http.MethodPost, iss.DomainURL()+"/oauth2/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if tt.basic[0] != "" {
					req.SetBasicAuth(tt.basic[0], tt.basic[1])
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var body map[string]any
				json.NewDecoder(resp.Body).Decode(&body)
				return resp.StatusCode, body
			}
			status, body := post()
			if got, _ := body["error"].(string); got != tt.wantCode {
				t.Fatalf("token = %d %v, want error %q", status, body, tt.wantCode)
			}
			if tt.wantCode != "" {
				return
			}
			for _, k := range []string{"access_token", "id_token", "refresh_token"} {
				if s, _ := body[k].(string); s == "" {
					t.Errorf("no %s", k)
				}
			}
			if status, body := post(); body["error"] != "invalid_grant" {
				t.Errorf("second use of a code = %d %v, want invalid_grant", status, body)
			}
		})
	}
}

func TestAuthorizeRefusesPlainPKCE(t *testing.T) {
	iss := testkit.Start(t)
	q := url.Values{"response_type": {"code"}, "client_id": {iss.ClientID}, "redirect_uri": {"https://app.example.com/cb"},
		"code_challenge": {"x"}, "code_challenge_method": {"plain"}, "state": {"<st>"}}
	resp, err := noFollow.Get(iss.DomainURL() + "/oauth2/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("plain PKCE = %d %q, want a redirect with error=invalid_request", resp.StatusCode, loc)
	}
}
