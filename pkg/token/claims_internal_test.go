package token

import (
	"errors"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// FuzzDecode checks the header and claims decoders against the JSON library's own reading of the same
// bytes: what the library refuses as JSON (syntax, duplicate names, invalid UTF-8, more than one value)
// the decoders refuse too, a well-formed object fails only on a known claim of the wrong type, and the
// names read are exactly the library's names, never a case or Unicode variant.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"alg":"RS256","kid":"k1","typ":"JWT"}`, `{"alg":"none","kid":"k1","alg":"RS256"}`, `{"alg":1,"kid":[]}`,
		`{"iss":"https://x","sub":"s","aud":"c","exp":1800003600,"iat":1800000000,"token_use":"id"}`,
		`{"aud":["a","b"],"cognito:groups":["users"],"Cognito:Groups":["admins"],"cognito:groupſ":["x"]}`,
		`{"sub":"a","sub":"b"}`, `{"sub":"a","s\u0075b":"b"}`, `{"ISS":"x","TOKEN_USE":"access","Client_ID":"c"}`,
		`{"custom:tenant":"acme","email":"a@b","exp":"1"}`, "{\"sub\":\"\xff\"}", `{}{}`, `[]`, `null`, ``, `{"a":{"b":[1,2,{"c":null}]}}`,
	} {
		f.Add([]byte(s))
	}
	want := map[string]struct{}{"custom:tenant": {}, "email": {}, "cognito:groups": {}}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ref map[string]jsontext.Value
		refErr := json.Unmarshal(data, &ref) // default options: duplicate names and invalid UTF-8 refused
		if ref == nil && refErr == nil {
			refErr = errors.New("null") // a JSON null is no object
		}

		h, err := decodeHeader(data)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("decodeHeader(%q) error = %v, the JSON library's = %v", data, err, refErr)
		}
		if err == nil {
			var alg string
			if json.Unmarshal(ref["alg"], &alg) == nil && ref["alg"].Kind() == '"' && h.alg != alg {
				t.Errorf("decodeHeader(%q).alg = %q, want %q", data, h.alg, alg)
			}
			if _, ok := ref["alg"]; !ok && h.alg != "" {
				t.Errorf("decodeHeader(%q).alg = %q without an alg member", data, h.alg)
			}
		}

		c := &claims{want: want}
		err = c.decode(data)
		switch {
		case refErr != nil && err == nil:
			t.Fatalf("decode(%q) accepted what the JSON library refuses: %v", data, refErr)
		case refErr != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrClaims):
			t.Fatalf("decode(%q) error = %v, want ErrMalformed or ErrClaims", data, err)
		case refErr == nil && err != nil && !errors.Is(err, ErrClaims):
			t.Fatalf("decode(%q) of a well-formed object error = %v, want ErrClaims", data, err)
		case err == nil:
			for name, got := range map[string]string{"iss": c.Iss, "sub": c.Sub, "token_use": c.TokenUse, "client_id": c.ClientID, "email": c.Email} {
				var s string
				if raw, ok := ref[name]; ok && raw.Kind() == '"' {
					if json.Unmarshal(raw, &s) != nil {
						t.Fatalf("the JSON library cannot read its own string %q", raw)
					}
				}
				if got != s {
					t.Errorf("decode(%q): %s = %q, the JSON library reads %q", data, name, got, s)
				}
			}
			for name := range c.extra {
				if _, ok := ref[name]; !ok {
					t.Errorf("decode(%q) kept claim %q, which the object does not hold", data, name)
				}
			}
		}
	})
}
