package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

// cognitoLocalKID is the kid of the one RSA key cognito-local signs with. The
// key pair ships inside the npm package, so anyone can mint tokens that
// verify against it: never trust it outside tests.
const cognitoLocalKID = "CognitoLocal"

// cognitoLocalTokenTTL is the lifetime of the emulator's access and ID tokens
// when the app client sets no validity (real Cognito: 1h by default).
const cognitoLocalTokenTTL = 24 * time.Hour

// verifyToken verifies raw the way cognito-authz must: RS256 only, key from
// the pool's JWKS by kid, issuer and expiry required.
func verifyToken(t *testing.T, kf keyfunc.Keyfunc, issuer, raw string, opts ...jwt.ParserOption) (*jwt.Token, jwt.MapClaims) {
	t.Helper()
	p := jwt.NewParser(append([]jwt.ParserOption{
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	}, opts...)...)
	var claims jwt.MapClaims
	tok, err := p.ParseWithClaims(raw, &claims, kf.KeyfuncCtx(t.Context()))
	if err != nil {
		t.Fatalf("verify token: %v", err)
	}
	return tok, claims
}

// newKeyfunc fetches the key set at jwksURL; its refresh goroutine ends with
// the test.
func newKeyfunc(t *testing.T, jwksURL string) keyfunc.Keyfunc {
	t.Helper()
	kf, err := keyfunc.NewDefaultCtx(t.Context(), []string{jwksURL})
	if err != nil {
		t.Fatalf("keyfunc for %s: %v", jwksURL, err)
	}
	return kf
}

// pick returns the claims named in want's keys, so that cmp.Diff reports
// values without noise from per-token claims such as jti.
func pick(claims jwt.MapClaims, want map[string]any) map[string]any {
	got := make(map[string]any, len(want))
	for k := range want {
		if v, ok := claims[k]; ok {
			got[k] = v
		}
	}
	return got
}

// TestCognitoLocalTokens verifies the emulator's tokens with the libraries
// and checks cognito-authz uses, and pins their claim sets: the service core
// must accept these tokens, so a change in them must show up here first.
func TestCognitoLocalTokens(t *testing.T) {
	t.Parallel()
	cl := sharedCognitoLocal(t)
	s := cl.newAdminSession(t)

	// A user without groups: the emulator, like Cognito, leaves
	// cognito:groups out instead of sending an empty list.
	p := cl.newPool(t)
	bob := p.newUser(t, "bob")
	bobAccess, _ := p.signIn(t, bob)

	tests := []struct {
		name    string
		raw     string
		iss     string
		jwksURL string
		opts    []jwt.ParserOption
		want    map[string]any // claims with known values
		names   []string       // every claim the token carries
	}{
		{
			name:    "access",
			raw:     s.accessToken,
			iss:     s.issuer,
			jwksURL: s.jwksURL,
			want: map[string]any{
				"token_use":      "access",
				"client_id":      s.clientID,
				"username":       s.username,
				"sub":            s.sub,
				"cognito:groups": []any{adminsGroup},
				"scope":          "aws.cognito.signin.user.admin",
			},
			// Real Cognito also sends version (2) and origin_jti.
			names: []string{"auth_time", "client_id", "cognito:groups", "event_id", "exp", "iat", "iss", "jti", "scope", "sub", "token_use", "username"},
		},
		{
			name:    "id",
			raw:     s.idToken,
			iss:     s.issuer,
			jwksURL: s.jwksURL,
			opts:    []jwt.ParserOption{jwt.WithAudience(s.clientID)},
			want: map[string]any{
				"token_use":        "id",
				"aud":              s.clientID,
				"cognito:username": s.username,
				"email":            s.email,
				"email_verified":   true,
				"sub":              s.sub,
				"cognito:groups":   []any{adminsGroup},
			},
			// Real Cognito also sends origin_jti.
			names: []string{"aud", "auth_time", "cognito:groups", "cognito:username", "email", "email_verified", "event_id", "exp", "iat", "iss", "jti", "sub", "token_use"},
		},
		{
			name:    "access_without_groups",
			raw:     bobAccess,
			iss:     p.issuer,
			jwksURL: p.jwksURL,
			want: map[string]any{
				"token_use": "access",
				"client_id": p.clientID,
				"username":  bob.username,
				"sub":       bob.sub,
			},
			names: []string{"auth_time", "client_id", "event_id", "exp", "iat", "iss", "jti", "scope", "sub", "token_use", "username"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok, claims := verifyToken(t, newKeyfunc(t, tt.jwksURL), tt.iss, tt.raw, tt.opts...)

			// Real Cognito sends only kid and alg; the emulator's
			// jsonwebtoken adds typ.
			wantHeader := map[string]any{"alg": "RS256", "kid": cognitoLocalKID, "typ": "JWT"}
			if diff := cmp.Diff(wantHeader, tok.Header); diff != "" {
				t.Errorf("header mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, pick(claims, tt.want)); diff != "" {
				t.Errorf("claims mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.names, slices.Sorted(maps.Keys(claims))); diff != "" {
				t.Errorf("claim names mismatch (-want +got):\n%s", diff)
			}

			iat, err := claims.GetIssuedAt()
			if err != nil || iat == nil {
				t.Fatalf("iat = %v, %v; want a NumericDate", iat, err)
			}
			exp, err := claims.GetExpirationTime()
			if err != nil || exp == nil {
				t.Fatalf("exp = %v, %v; want a NumericDate", exp, err)
			}
			if got := exp.Sub(iat.Time); got != cognitoLocalTokenTTL {
				t.Errorf("exp - iat = %v, want %v", got, cognitoLocalTokenTTL)
			}
			if got, ok := claims["auth_time"].(float64); !ok || int64(got) != iat.Unix() {
				t.Errorf("auth_time = %#v, want the iat %d as a JSON number", claims["auth_time"], iat.Unix())
			}
		})
	}
}

// TestCognitoLocalQuirks pins where the emulator differs from real Cognito in
// ways that matter for configuring cognito-authz against it.
func TestCognitoLocalQuirks(t *testing.T) {
	t.Parallel()
	cl := sharedCognitoLocal(t)
	s := cl.newAdminSession(t)

	t.Run("discovery_names_default_address", func(t *testing.T) {
		t.Parallel()
		// The discovery document hard-codes localhost:9229 whatever HOST
		// and PORT are, so pools must configure issuer (and so jwks_url)
		// explicitly instead of discovering them.
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		getJSON(t, s.issuer+"/.well-known/openid-configuration", &doc)
		if want := "http://localhost:9229/" + s.poolID; doc.Issuer != want {
			t.Errorf("discovery issuer = %q, want %q (tokens say %q)", doc.Issuer, want, s.issuer)
		}
		if want := "http://localhost:9229/" + s.poolID + "/.well-known/jwks.json"; doc.JWKSURI != want {
			t.Errorf("discovery jwks_uri = %q, want %q", doc.JWKSURI, want)
		}
	})

	t.Run("one_key_for_every_pool", func(t *testing.T) {
		t.Parallel()
		// Every pool, and any path that looks like one, serves the same
		// key set, so a token of one pool verifies with another pool's
		// keys: only the issuer check tells pools apart.
		type jwks struct {
			Keys []map[string]any `json:"keys"`
		}
		var own, unknown jwks
		getJSON(t, s.jwksURL, &own)
		getJSON(t, cl.jwksURL("local_doesnotexist"), &unknown)
		if diff := cmp.Diff(own, unknown); diff != "" {
			t.Errorf("JWKS of an unknown pool differs (-own +unknown):\n%s", diff)
		}
		if len(own.Keys) != 1 || own.Keys[0]["kid"] != cognitoLocalKID {
			t.Errorf("JWKS keys = %v, want one key with kid %q", own.Keys, cognitoLocalKID)
		}
		other := cl.newPool(t)
		verifyToken(t, newKeyfunc(t, other.jwksURL), s.issuer, s.accessToken)
	})

	t.Run("email_verified_is_truthy_string", func(t *testing.T) {
		t.Parallel()
		// The emulator converts the attribute with JavaScript's Boolean(),
		// so the string "false" becomes true in the ID token. Never base a
		// decision on email_verified in tests against the emulator.
		p := cl.newPool(t)
		ctx, cancel := context.WithTimeout(t.Context(), cognitoAPITimeout)
		defer cancel()
		if _, err := p.api.AdminCreateUser(ctx, &cip.AdminCreateUserInput{
			UserPoolId:    aws.String(p.id),
			Username:      aws.String("carol"),
			MessageAction: types.MessageActionTypeSuppress,
			UserAttributes: []types.AttributeType{
				{Name: aws.String("email"), Value: aws.String("carol@example.com")},
				{Name: aws.String("email_verified"), Value: aws.String("false")},
			},
		}); err != nil {
			t.Fatalf("AdminCreateUser: %v", err)
		}
		if _, err := p.api.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{
			UserPoolId: aws.String(p.id),
			Username:   aws.String("carol"),
			Password:   aws.String(testPassword),
			Permanent:  true,
		}); err != nil {
			t.Fatalf("AdminSetUserPassword: %v", err)
		}
		_, id := p.signIn(t, cognitoUser{username: "carol", password: testPassword})
		_, claims := verifyToken(t, newKeyfunc(t, p.jwksURL), p.issuer, id, jwt.WithAudience(p.clientID))
		if got := claims["email_verified"]; got != true {
			t.Errorf("email_verified = %#v for attribute \"false\", want true (emulator quirk)", got)
		}
	})
}

// getJSON decodes the JSON body of a GET of url into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decode: %v", url, err)
	}
}
