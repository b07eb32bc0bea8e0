package token_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// now is the fixed clock of these tests: tokens are minted relative to it and verifiers read it.
var now = time.Unix(1_800_000_000, 0)

// updatedIssuer is Cognito's newer issuer form; the tests route it to the devissuer's keys.
const updatedIssuer = "https://issuer-cognito-idp.us-east-1.amazonaws.com/" + devissuer.DefaultPoolID

// mustOtherKey is a second RSA key (pre-generated) under kid.
func mustOtherKey(tb testing.TB, kid string) *devissuer.Key { return testkit.Key(tb, 1, kid) }

// newVerifier accepts the devissuer's pool under both issuer forms, for client devissuer.DefaultClientID.
func newVerifier(tb testing.TB, iss *devissuer.Issuer, set token.KeySource, use string, opts ...token.Option) *token.Verifier {
	tb.Helper()
	v, err := token.NewVerifier([]token.Pool{{
		Name:      "dev",
		Issuers:   []string{iss.URL, updatedIssuer},
		ClientIDs: []string{"other-client", devissuer.DefaultClientID},
		TokenUse:  use,
		Keys:      set,
	}}, append([]token.Option{token.WithClock(func() time.Time { return now })}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// timed sets iat, auth_time and a one-hour exp relative to now.
func timed(c jwt.MapClaims) jwt.MapClaims {
	c["iat"], c["auth_time"], c["exp"] = now.Unix(), now.Unix(), now.Add(time.Hour).Unix()
	return c
}

func edit(c jwt.MapClaims, set map[string]any, del ...string) jwt.MapClaims {
	for k, v := range set {
		c[k] = v
	}
	for _, k := range del {
		delete(c, k)
	}
	return c
}

func sign(tb testing.TB, key *devissuer.Key, header map[string]any, c jwt.MapClaims) string {
	tb.Helper()
	s, err := devissuer.Sign(key, header, c)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// signWith signs with any method, for the algorithm cases devissuer.Sign (RS256 only) cannot make.
func signWith(tb testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	tb.Helper()
	t := jwt.NewWithClaims(m, c)
	t.Header["kid"] = kid
	s, err := t.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// rawPayload replaces the payload of a signed token and keeps its header and signature.
func rawPayload(tb testing.TB, tok string, payload string) string {
	tb.Helper()
	parts := strings.Split(tok, ".")
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + parts[2]
}

// rawClaims signs a payload given as JSON text, for wrong types Go values cannot express.
func rawClaims(tb testing.TB, key *devissuer.Key, c jwt.MapClaims, override string) string {
	tb.Helper()
	// The override replaces the claims it names: a name may appear only once.
	c = maps.Clone(c)
	for name := range c {
		if strings.Contains(override, `"`+name+`":`) {
			delete(c, name)
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	payload := strings.TrimSuffix(string(b), "}") + "," + override + "}"
	t := jwt.New(jwt.SigningMethodRS256)
	t.Header["kid"] = key.ID
	h, _ := json.Marshal(t.Header)
	text := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodRS256.Sign(text, key.Private)
	if err != nil {
		tb.Fatal(err)
	}
	return text + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestVerify(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	set := testkit.LoadedSet(t, iss)
	key := iss.SigningKey()
	access := func() jwt.MapClaims { return timed(iss.Access()) }
	id := func() jwt.MapClaims { return timed(iss.IDToken()) }
	m2m := func() jwt.MapClaims { return timed(iss.M2M()) }
	valid := sign(t, key, nil, access())

	pubDER, err := x509.MarshalPKIXPublicKey(&key.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	wantAccess := &token.Identity{
		Pool: "dev", Subject: "0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa", Username: "alice",
		ClientID: devissuer.DefaultClientID, TokenUse: "access", Scope: "aws.cognito.signin.user.admin openid email",
		Groups: []string{"users"}, JTI: "3d9e5b4f-jti", KID: key.ID, Expires: now.Add(time.Hour + 30*time.Second),
	}
	wantID := &token.Identity{
		Pool: "dev", Subject: "0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa", Username: "alice",
		ClientID: devissuer.DefaultClientID, TokenUse: "id", Email: "alice@example.com",
		Groups: []string{"users"}, JTI: "9a8b-jti", KID: key.ID, Expires: now.Add(time.Hour + 30*time.Second),
	}
	with := func(id *token.Identity, f func(*token.Identity)) *token.Identity {
		c := *id
		f(&c)
		return &c
	}

	tests := []struct {
		name    string
		token   string
		use     string        // the pool's TokenUse; default "access"
		at      time.Duration // clock offset from now
		opts    []token.Option
		want    *token.Identity // checked when wantErr is nil
		wantErr error
	}{
		// Accepted.
		{name: "valid_access", token: valid, want: wantAccess},
		{name: "valid_id", token: sign(t, key, nil, id()), use: "id", want: wantID},
		{
			name: "valid_m2m", token: sign(t, key, nil, m2m()),
			want: &token.Identity{
				Pool: "dev", Subject: devissuer.DefaultClientID, ClientID: devissuer.DefaultClientID,
				TokenUse: "access", Scope: "orders/read orders/write", JTI: "3d9e5b4f-jti", KID: key.ID,
				Expires: now.Add(time.Hour + 30*time.Second),
			},
		},
		{
			name:  "updated_issuer_form",
			token: sign(t, key, nil, edit(access(), map[string]any{"iss": updatedIssuer})),
			want:  wantAccess,
		},
		{name: "any_takes_access", token: valid, use: "any", want: wantAccess},
		{name: "any_takes_id", token: sign(t, key, nil, id()), use: "any", want: wantID},
		{
			name:  "custom_leeway_sets_expires",
			token: valid,
			opts:  []token.Option{token.WithLeeway(5 * time.Second)},
			want:  with(wantAccess, func(i *token.Identity) { i.Expires = now.Add(time.Hour + 5*time.Second) }),
		},

		// Algorithm and header.
		{name: "alg_none", token: signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, key.ID, access()), wantErr: token.ErrAlgorithm},
		{name: "alg_hs256_with_public_key_as_secret", token: signWith(t, jwt.SigningMethodHS256, pubPEM, key.ID, access()), wantErr: token.ErrAlgorithm},
		{name: "alg_hs256_with_public_key_der", token: signWith(t, jwt.SigningMethodHS256, pubDER, key.ID, access()), wantErr: token.ErrAlgorithm},
		{name: "alg_rs512", token: signWith(t, jwt.SigningMethodRS512, key.Private, key.ID, access()), wantErr: token.ErrAlgorithm},
		{name: "alg_ps256", token: signWith(t, jwt.SigningMethodPS256, key.Private, key.ID, access()), wantErr: token.ErrAlgorithm},
		{name: "alg_unknown", token: sign(t, key, map[string]any{"alg": "XS999"}, access()), wantErr: token.ErrAlgorithm},
		{name: "alg_missing", token: sign(t, key, map[string]any{"alg": nil}, access()), wantErr: token.ErrAlgorithm},
		{name: "kid_missing", token: sign(t, key, map[string]any{"kid": nil}, access()), wantErr: token.ErrKIDMissing},
		{name: "kid_empty", token: sign(t, key, map[string]any{"kid": ""}, access()), wantErr: token.ErrKIDMissing},
		{name: "kid_not_a_string", token: sign(t, key, map[string]any{"kid": 42}, access()), wantErr: token.ErrKIDMissing},
		{name: "header_jku", token: sign(t, key, map[string]any{"jku": "https://evil.example/jwks.json"}, access()), wantErr: token.ErrHeader},
		{name: "header_x5u", token: sign(t, key, map[string]any{"x5u": "https://evil.example/cert.pem"}, access()), wantErr: token.ErrHeader},
		{name: "header_jwk", token: sign(t, key, map[string]any{"jwk": map[string]any{"kty": "RSA", "n": "AQAB", "e": "AQAB"}}, access()), wantErr: token.ErrHeader},
		{name: "header_x5c", token: sign(t, key, map[string]any{"x5c": []string{"MIIB"}}, access()), wantErr: token.ErrHeader},
		{name: "header_crit", token: sign(t, key, map[string]any{"crit": []string{"exp"}}, access()), wantErr: token.ErrHeader},
		{name: "header_jku_null", token: rawHeader(t, key, `{"alg":"RS256","kid":"`+key.ID+`","jku":null}`, access()), wantErr: token.ErrHeader},

		// Issuer and signature.
		{name: "issuer_unknown", token: sign(t, key, nil, edit(access(), map[string]any{"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_evil"})), wantErr: token.ErrIssuer},
		{name: "issuer_trailing_slash", token: sign(t, key, nil, edit(access(), map[string]any{"iss": iss.URL + "/"})), wantErr: token.ErrIssuer},
		{name: "issuer_missing", token: sign(t, key, nil, edit(access(), nil, "iss")), wantErr: token.ErrIssuer},
		{name: "payload_tampered", token: rawPayload(t, valid, strings.Replace(mustJSON(t, access()), `"alice"`, `"admin"`, 1)), wantErr: token.ErrSignature},
		{name: "signed_by_other_key_same_kid", token: sign(t, mustOtherKey(t, key.ID), nil, access()), wantErr: token.ErrSignature},
		{name: "signature_bit_flipped", token: mutateSig(t, valid, func(b []byte) []byte { b[len(b)/2] ^= 1; return b }), wantErr: token.ErrSignature},
		{name: "signature_truncated", token: mutateSig(t, valid, func(b []byte) []byte { return b[:len(b)-1] }), wantErr: token.ErrSignature},
		{name: "signature_trailing_bits", token: valid[:len(valid)-1] + nextB64(valid[len(valid)-1]), wantErr: token.ErrMalformed},
		{name: "claims_not_base64", token: rawPayloadText(valid, "e30x"), wantErr: token.ErrMalformed},
		{name: "signature_empty", token: valid[:strings.LastIndexByte(valid, '.')+1], wantErr: token.ErrSignature},
		{name: "kid_unknown", token: sign(t, mustOtherKey(t, "no-such-kid"), nil, access()), wantErr: token.ErrKeyUnknown},

		// Time.
		{name: "expired", token: valid, at: 2 * time.Hour, wantErr: token.ErrExpired},
		{name: "expired_within_leeway", token: valid, at: time.Hour + 29*time.Second, want: wantAccess},
		{name: "expired_just_past_leeway", token: valid, at: time.Hour + 31*time.Second, wantErr: token.ErrExpired},
		{name: "expired_at_exp_with_zero_leeway", token: valid, at: time.Hour, opts: []token.Option{token.WithLeeway(0)}, wantErr: token.ErrExpired},
		{name: "nbf_in_future", token: sign(t, key, nil, edit(access(), map[string]any{"nbf": now.Add(time.Minute).Unix()})), wantErr: token.ErrNotYetValid},
		{name: "nbf_within_leeway", token: sign(t, key, nil, edit(access(), map[string]any{"nbf": now.Add(20 * time.Second).Unix()})), want: wantAccess},
		{name: "iat_in_future", token: sign(t, key, nil, edit(access(), map[string]any{"iat": now.Add(31 * time.Second).Unix()})), wantErr: token.ErrNotYetValid},
		{name: "iat_within_leeway", token: sign(t, key, nil, edit(access(), map[string]any{"iat": now.Add(29 * time.Second).Unix()})), want: wantAccess},
		{name: "iat_missing", token: sign(t, key, nil, edit(access(), nil, "iat")), wantErr: token.ErrClaims},
		{name: "exp_missing", token: sign(t, key, nil, edit(access(), nil, "exp")), wantErr: token.ErrClaims},
		{name: "exp_before_iat", token: sign(t, key, nil, edit(access(), map[string]any{"iat": now.Unix(), "exp": now.Add(-time.Second).Unix()})), at: -10 * time.Second, wantErr: token.ErrClaims},
		{name: "exp_huge", token: rawClaims(t, key, access(), `"exp":1e300`), wantErr: token.ErrClaims},
		{name: "exp_negative", token: rawClaims(t, key, access(), `"exp":-1`), wantErr: token.ErrClaims},
		{name: "exp_zero", token: rawClaims(t, key, access(), `"exp":0`), wantErr: token.ErrClaims},
		{name: "exp_null", token: rawClaims(t, key, access(), `"exp":null`), wantErr: token.ErrClaims},
		{name: "exp_beyond_int64", token: rawClaims(t, key, access(), `"exp":9223372036854775808`), wantErr: token.ErrClaims},
		{name: "iat_negative", token: rawClaims(t, key, access(), `"iat":-5`), wantErr: token.ErrClaims},
		{name: "lifetime_over_24h", token: sign(t, key, nil, edit(access(), map[string]any{"exp": now.Add(24*time.Hour + time.Second).Unix()})), wantErr: token.ErrClaims},
		{
			name:  "lifetime_exactly_24h",
			token: sign(t, key, nil, edit(access(), map[string]any{"exp": now.Add(24 * time.Hour).Unix()})),
			want:  with(wantAccess, func(i *token.Identity) { i.Expires = now.Add(24*time.Hour + 30*time.Second) }),
		},

		// Claims.
		{name: "sub_missing", token: sign(t, key, nil, edit(access(), nil, "sub")), wantErr: token.ErrClaims},
		{name: "sub_empty", token: sign(t, key, nil, edit(access(), map[string]any{"sub": ""})), wantErr: token.ErrClaims},
		{name: "exp_as_string", token: rawClaims(t, key, access(), `"exp":"1800003600"`), wantErr: token.ErrClaims},
		{name: "groups_as_string", token: rawClaims(t, key, access(), `"cognito:groups":"admins"`), wantErr: token.ErrClaims},
		{name: "scope_as_number", token: rawClaims(t, key, access(), `"scope":42`), wantErr: token.ErrClaims},
		{name: "token_use_as_number", token: rawClaims(t, key, access(), `"token_use":1`), wantErr: token.ErrClaims},
		{name: "client_id_as_list", token: rawClaims(t, key, access(), `"client_id":["devclient"]`), wantErr: token.ErrClaims},
		{name: "aud_as_number", token: rawClaims(t, key, id(), `"aud":7`), use: "id", wantErr: token.ErrClaims},
		{
			// Cognito's ID tokens carry aud as a string; aws-jwt-verify refuses a list, even one holding the client.
			name:    "id_aud_list_containing_client",
			token:   sign(t, key, nil, edit(id(), map[string]any{"aud": []string{"someone-else", devissuer.DefaultClientID}})),
			use:     "id",
			wantErr: token.ErrClaims,
		},
		{name: "id_aud_list_of_the_client_only", token: sign(t, key, nil, edit(id(), map[string]any{"aud": []string{devissuer.DefaultClientID}})), use: "id", wantErr: token.ErrClaims},
		{name: "aud_list_with_number", token: rawClaims(t, key, id(), `"aud":["devclient",7]`), use: "id", wantErr: token.ErrClaims},
		{name: "iss_as_list", token: rawClaims(t, key, access(), `"iss":["`+iss.URL+`"]`), wantErr: token.ErrClaims},

		// token_use and app client.
		{name: "id_where_access_required", token: sign(t, key, nil, id()), use: "access", wantErr: token.ErrTokenUse},
		{name: "access_where_id_required", token: valid, use: "id", wantErr: token.ErrTokenUse},
		{name: "token_use_garbage", token: sign(t, key, nil, edit(access(), map[string]any{"token_use": "refresh"})), use: "any", wantErr: token.ErrTokenUse},
		{name: "token_use_missing", token: sign(t, key, nil, edit(access(), nil, "token_use")), use: "any", wantErr: token.ErrTokenUse},
		{name: "token_use_any_in_token", token: sign(t, key, nil, edit(access(), map[string]any{"token_use": "any"})), use: "any", wantErr: token.ErrTokenUse},
		{name: "access_client_id_unknown", token: sign(t, key, nil, edit(access(), map[string]any{"client_id": "evil"})), wantErr: token.ErrClient},
		{name: "access_client_id_missing", token: sign(t, key, nil, edit(access(), nil, "client_id")), wantErr: token.ErrClient},
		{
			// An access token names its client in client_id; a matching aud must not stand in for it.
			name:    "access_client_in_aud_only",
			token:   sign(t, key, nil, edit(access(), map[string]any{"client_id": "evil", "aud": devissuer.DefaultClientID})),
			wantErr: token.ErrClient,
		},
		{name: "id_aud_unknown", token: sign(t, key, nil, edit(id(), map[string]any{"aud": "evil"})), use: "id", wantErr: token.ErrClient},
		{name: "id_aud_missing", token: sign(t, key, nil, edit(id(), nil, "aud")), use: "id", wantErr: token.ErrClient},
		{
			// An ID token names its client in aud; a matching client_id must not stand in for it.
			name:    "id_client_in_client_id_only",
			token:   sign(t, key, nil, edit(id(), map[string]any{"aud": "evil", "client_id": devissuer.DefaultClientID})),
			use:     "id",
			wantErr: token.ErrClient,
		},

		// Shape and size.
		{name: "too_large", token: valid, opts: []token.Option{token.WithMaxBytes(len(valid) - 1)}, wantErr: token.ErrTooLarge},
		{name: "at_max_bytes", token: valid, opts: []token.Option{token.WithMaxBytes(len(valid))}, want: wantAccess},
		{name: "too_large_garbage_not_parsed", token: strings.Repeat("!", 9000), wantErr: token.ErrTooLarge},
		{name: "empty", token: "", wantErr: token.ErrMalformed},
		{name: "two_segments", token: valid[:strings.LastIndexByte(valid, '.')], wantErr: token.ErrMalformed},
		{name: "header_not_json", token: "bm90IGpzb24" + valid[strings.IndexByte(valid, '.'):], wantErr: token.ErrMalformed},
		{name: "newline_in_signature", token: valid[:len(valid)-10] + "\n" + valid[len(valid)-10:], wantErr: token.ErrMalformed},
		{name: "padding_appended", token: valid + "==", wantErr: token.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			use := tt.use
			if use == "" {
				use = "access"
			}
			opts := append([]token.Option{token.WithClock(func() time.Time { return now.Add(tt.at) })}, tt.opts...)
			v := newVerifier(t, iss, set, use, opts...)
			got, err := v.Verify(t.Context(), tt.token)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify() error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if got != nil {
					t.Errorf("Verify() = %+v with error %v, want nil", got, err)
				}
				return
			}
			// NotBefore has its own test (TestIdentityTimes); the key set is not part of who the caller is.
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(token.Identity{}),
				cmpopts.IgnoreFields(token.Identity{}, "NotBefore")); diff != "" {
				t.Errorf("Verify() identity mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// mutateSig re-encodes a token's signature after f changes its bytes.
func mutateSig(tb testing.TB, tok string, f func([]byte) []byte) string {
	tb.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		tb.Fatal(err)
	}
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(f(sig))
}

// nextB64 is c with its lowest bit flipped: as the last character of a 2048-bit signature it changes
// only the 4 padding bits, which strict decoding must refuse.
func nextB64(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return string(alphabet[strings.IndexByte(alphabet, c)^1])
}

// rawPayloadText replaces the payload segment verbatim.
func rawPayloadText(tok, seg string) string {
	parts := strings.Split(tok, ".")
	return parts[0] + "." + seg + "." + parts[2]
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// rawHeader signs claims under a header given as JSON text.
func rawHeader(tb testing.TB, key *devissuer.Key, header string, c jwt.MapClaims) string {
	tb.Helper()
	text := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(mustJSON(tb, c)))
	sig, err := jwt.SigningMethodRS256.Sign(text, key.Private)
	if err != nil {
		tb.Fatal(err)
	}
	return text + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestVerifyClaims checks that WithClaims keeps the named claims that have a faithful string form.
func TestVerifyClaims(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	v := newVerifier(t, iss, testkit.LoadedSet(t, iss), "id", token.WithClaims(
		"custom:tenant", "custom:roles", "custom:level", "custom:ratio", "email_verified",
		"custom:object", "custom:null", "custom:mixed", "custom:absent", "custom:tenant", // duplicate on purpose
	))
	c := edit(timed(iss.IDToken()), map[string]any{
		"custom:roles":  []string{"reader", "writer"},
		"custom:level":  3,
		"custom:ratio":  1.5,
		"custom:object": map[string]any{"a": "b"},
		"custom:null":   nil,
		"custom:mixed":  []any{"a", 1},
		"custom:hidden": "not asked for",
	})
	got, err := v.Verify(t.Context(), sign(t, iss.SigningKey(), nil, c))
	if err != nil {
		t.Fatalf("Verify() error = %v", err)
	}
	want := map[string][]string{
		"custom:tenant":  {"acme"},
		"custom:roles":   {"reader", "writer"},
		"custom:level":   {"3"},
		"custom:ratio":   {"1.5"},
		"email_verified": {"true"},
	}
	if diff := cmp.Diff(want, got.Claims); diff != "" {
		t.Errorf("Identity.Claims mismatch (-want +got):\n%s", diff)
	}
}

// TestVerifyUnknownIssuerFetchesNothing shows that the issuer is routed before any key is read: a token
// of a foreign issuer with an unknown kid (which would otherwise start an unknown-kid fetch) costs nothing.
func TestVerifyUnknownIssuerFetchesNothing(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	v := newVerifier(t, iss, testkit.LoadedSet(t, iss), "access")
	before := iss.Fetches()
	for _, issuer := range []string{"https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_other", ""} {
		c := edit(timed(iss.Access()), map[string]any{"iss": issuer})
		_, err := v.Verify(t.Context(), sign(t, mustOtherKey(t, "foreign-kid"), nil, c))
		if !errors.Is(err, token.ErrIssuer) {
			t.Fatalf("Verify(iss %q) error = %v, want %v", issuer, err, token.ErrIssuer)
		}
	}
	if got := iss.Fetches(); got != before {
		t.Errorf("JWKS fetches = %d, want %d: an unknown issuer must not reach the key set", got, before)
	}
}

// TestVerifyKeysNeverLoaded: a pool whose JWKS has never loaded refuses every token as keys_unavailable,
// not as an unknown key or a bad signature.
func TestVerifyKeysNeverLoaded(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	iss.FailWith(500)
	set, err := jwks.New(jwks.Options{URL: iss.JWKSURL(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Refresh(t.Context()); err == nil {
		t.Fatal("Refresh() of a failing JWKS succeeded")
	}
	v := newVerifier(t, iss, set, "access")
	tok := sign(t, iss.SigningKey(), nil, timed(iss.Access()))
	for i := range 2 { // the first may spend the unknown-kid window, the second may not
		if _, err := v.Verify(t.Context(), tok); !errors.Is(err, token.ErrKeysUnavailable) {
			t.Fatalf("Verify() #%d error = %v, want %v", i, err, token.ErrKeysUnavailable)
		}
	}
}

func TestNewVerifier(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	set := testkit.LoadedSet(t, iss)
	tests := []struct {
		name    string
		pools   []token.Pool
		wantErr bool
	}{
		{name: "ok", pools: []token.Pool{{Name: "a", Issuers: []string{"x"}, Keys: set}, {Name: "b", Issuers: []string{"y"}, Keys: set}}},
		{name: "no_keys", pools: []token.Pool{{Name: "a", Issuers: []string{"x"}}}, wantErr: true},
		{name: "issuer_twice", pools: []token.Pool{{Name: "a", Issuers: []string{"x"}, Keys: set}, {Name: "b", Issuers: []string{"x"}, Keys: set}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := token.NewVerifier(tt.pools); (err != nil) != tt.wantErr {
				t.Errorf("NewVerifier() error = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

// TestVerifyExactNames: claims and header parameters are read by their exact names only (no case or
// Unicode folding), and a name that appears twice is refused.
func TestVerifyExactNames(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	set := testkit.LoadedSet(t, iss)
	key := iss.SigningKey()
	access := func() jwt.MapClaims { return timed(iss.Access()) }
	kid := `"kid":"` + key.ID + `"`
	tests := []struct {
		name       string
		token      string
		wantErr    error
		wantGroups []string // checked when wantErr is nil
	}{
		{name: "groups_case_variant_ignored", token: rawClaims(t, key, access(), `"Cognito:Groups":["admins"]`), wantGroups: []string{"users"}},
		{name: "groups_upper_ignored", token: rawClaims(t, key, edit(access(), nil, "cognito:groups"), `"COGNITO:GROUPS":["admins"]`)},
		{name: "groups_long_s_ignored", token: rawClaims(t, key, edit(access(), nil, "cognito:groups"), `"cognito:groupſ":["admins"]`)},
		{name: "token_use_upper", token: rawClaims(t, key, edit(access(), nil, "token_use"), `"TOKEN_USE":"access"`), wantErr: token.ErrTokenUse},
		{name: "client_id_mixed_case", token: rawClaims(t, key, edit(access(), nil, "client_id"), `"Client_ID":"`+devissuer.DefaultClientID+`"`), wantErr: token.ErrClient},
		{name: "iss_upper", token: rawClaims(t, key, edit(access(), nil, "iss"), `"ISS":"`+iss.URL+`"`), wantErr: token.ErrIssuer},
		{name: "exp_upper", token: rawClaims(t, key, edit(access(), nil, "exp"), `"EXP":1800003600`), wantErr: token.ErrClaims},
		{name: "duplicate_groups", token: rawClaims(t, key, access(), `"cognito:groups":["users"],"cognito:groups":["admins"]`), wantErr: token.ErrClaims},
		{name: "duplicate_groups_escaped", token: rawClaims(t, key, access(), `"cognito:groups":["users"],"cognito:group\u0073":["admins"]`), wantErr: token.ErrClaims},
		{name: "duplicate_sub", token: rawClaims(t, key, access(), `"sub":"a","sub":"b"`), wantErr: token.ErrClaims},
		{name: "duplicate_unknown_claim", token: rawClaims(t, key, access(), `"x":1,"x":2`), wantErr: token.ErrClaims},
		{name: "invalid_utf8_claim", token: rawClaims(t, key, access(), "\"nickname\":\"\xff\""), wantErr: token.ErrMalformed},
		{name: "header_duplicate_alg", token: rawHeader(t, key, `{"alg":"none",`+kid+`,"alg":"RS256"}`, access()), wantErr: token.ErrHeader},
		{name: "header_duplicate_alg_rs256_first", token: rawHeader(t, key, `{"alg":"RS256",`+kid+`,"alg":"none"}`, access()), wantErr: token.ErrHeader},
		{name: "header_duplicate_kid", token: rawHeader(t, key, `{"alg":"RS256",`+kid+`,"kid":"other"}`, access()), wantErr: token.ErrHeader},
		{name: "header_duplicate_typ", token: rawHeader(t, key, `{"alg":"RS256",`+kid+`,"typ":"JWT","typ":"JWT"}`, access()), wantErr: token.ErrHeader},
		{name: "header_alg_upper", token: rawHeader(t, key, `{"ALG":"RS256",`+kid+`}`, access()), wantErr: token.ErrAlgorithm},
		{name: "header_kid_upper", token: rawHeader(t, key, `{"alg":"RS256","KID":"`+key.ID+`"}`, access()), wantErr: token.ErrKIDMissing},
		{name: "header_trailing_data", token: rawHeader(t, key, `{"alg":"RS256",`+kid+`}{}`, access()), wantErr: token.ErrMalformed},
		{name: "header_exact_is_fine", token: rawHeader(t, key, `{"typ":"JWT","alg":"RS256",`+kid+`}`, access()), wantGroups: []string{"users"}},
	}
	v := newVerifier(t, iss, set, "access")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := v.Verify(t.Context(), tt.token)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify() error = %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				if diff := cmp.Diff(tt.wantGroups, got.Groups); diff != "" {
					t.Errorf("Identity.Groups mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestVerifyClaimsKnownNames: an extra claim that is also one the verifier reads is kept and still read.
func TestVerifyClaimsKnownNames(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	v := newVerifier(t, iss, testkit.LoadedSet(t, iss), "id", token.WithClaims("email", "cognito:groups", "Email"))
	got, err := v.Verify(t.Context(), rawClaims(t, iss.SigningKey(), timed(iss.IDToken()), `"Email":"mallory@example.com"`))
	if err != nil {
		t.Fatalf("Verify() error = %v", err)
	}
	want := map[string][]string{"email": {"alice@example.com"}, "cognito:groups": {"users"}, "Email": {"mallory@example.com"}}
	if diff := cmp.Diff(want, got.Claims); diff != "" {
		t.Errorf("Identity.Claims mismatch (-want +got):\n%s", diff)
	}
	if got.Email != "alice@example.com" || !slices.Equal(got.Groups, []string{"users"}) {
		t.Errorf("Identity Email, Groups = %q, %q; want alice@example.com, [users]", got.Email, got.Groups)
	}
}
