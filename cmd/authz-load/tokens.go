package main

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
)

// loadIssuer is the issuer of every load token. The iss claim is fixed (and never contacted), so tokens
// minted in one run verify in the next, wherever the JWKS is served from.
const loadIssuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_authzload"

// tokenFile is what -cache-dir keeps: the signing key and the tokens it minted. Tokens live 24 hours (the
// longest Cognito allows), so a file is reused for 20.
type tokenFile struct {
	Created time.Time `json:"created"`
	KID     string    `json:"kid"`
	Key     []byte    `json:"key"` // PKCS #1 DER
	Tokens  []string  `json:"tokens"`
}

const tokenFileMaxAge = 20 * time.Hour

// tokens returns the issuer's key and n distinct valid access tokens, from dir when a fresh enough file
// holds them, otherwise minted on every core and saved there.
func tokens(dir string, n int, log func(string, ...any)) (*devissuer.Key, []string, error) {
	path := filepath.Join(dir, "tokens.json")
	if b, err := os.ReadFile(path); err == nil {
		var f tokenFile
		if json.Unmarshal(b, &f) == nil && time.Since(f.Created) < tokenFileMaxAge && len(f.Tokens) >= n {
			if k, err := x509.ParsePKCS1PrivateKey(f.Key); err == nil {
				log("reusing minted tokens", "file", path, "tokens", n, "age", time.Since(f.Created).Round(time.Minute))
				return &devissuer.Key{ID: f.KID, Private: k}, f.Tokens[:n], nil
			}
		}
	}
	key, err := devissuer.NewKey("authz-load-1")
	if err != nil {
		return nil, nil, err
	}
	start := time.Now()
	log("minting tokens on every core (kept for 20h in -cache-dir)", "tokens", n)
	toks, err := mint(key, n, start)
	if err != nil {
		return nil, nil, err
	}
	log("minted", "tokens", n, "took", time.Since(start).Round(time.Second))
	b, err := json.Marshal(tokenFile{Created: start, KID: key.ID, Key: x509.MarshalPKCS1PrivateKey(key.Private), Tokens: toks})
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, nil, err
	}
	return key, toks, nil
}

// mint signs n access tokens that differ in sub, username and jti, issued at iat for 24 hours.
func mint(key *devissuer.Key, n int, iat time.Time) ([]string, error) {
	iss := &devissuer.Issuer{URL: loadIssuer, PoolID: "us-east-1_authzload", ClientID: devissuer.DefaultClientID}
	iss.SetKeys(key, key)
	out := make([]string, n)
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	for w := range errs {
		wg.Go(func() {
			for i := w; i < n; i += len(errs) {
				c := iss.Access()
				c["sub"] = fmt.Sprintf("0b5f3c1e-7a2d-4c1b-9e0f-%012d", i)
				c["username"] = fmt.Sprintf("user%07d", i)
				c["jti"] = fmt.Sprintf("3d9e5b4f-0000-4000-8000-%012d", i)
				c["iat"], c["auth_time"], c["exp"] = iat.Unix(), iat.Unix(), iat.Add(24*time.Hour).Unix()
				tok, err := iss.Mint(c)
				if err != nil {
					errs[w] = err
					return
				}
				out[i] = tok
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// tamper flips one base64 character in the middle of the signature: the same kid, a bad signature.
func tamper(tok string) string {
	i := len(tok) - 20
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}
