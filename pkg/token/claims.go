package token

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/golang-jwt/jwt/v5"
)

// The header and the claims are read with jsontext (JSON v2), not encoding/json: names are matched exactly
// (encoding/json folds case and Unicode, so "Cognito:Groups" or "cognito:groupſ" would stand in for
// "cognito:groups", and "ISS" for "iss"), a name that appears twice is refused (encoding/json keeps the
// last, so {"alg":"none","alg":"RS256"} means whatever the reader's library thinks), and invalid UTF-8
// is refused rather than replaced. Each segment is read in one pass, straight into the fields below, and
// the extra claims a verifier keeps are taken in the same pass.

// header is the JOSE header of a token: the parameters the verifier reads, and whether any it refuses is
// present. Other parameters (typ, cty, ...) are skipped.
type header struct {
	alg, kid         string
	algSet, kidValid bool
	forbidden        string // the first refused parameter present, if any
}

// claims is the payload of a Cognito access or ID token. Unknown claims are ignored, except the extra ones
// a verifier was asked to keep. A known claim of the wrong JSON type fails decoding with ErrClaims.
type claims struct {
	Iss             string
	Sub             string
	Aud             []string
	AudArray        bool // aud was a JSON array (Cognito ID tokens carry a string)
	Exp             unixTime
	Nbf             unixTime
	Iat             unixTime
	JTI             string
	TokenUse        string
	ClientID        string
	Username        string
	CognitoUsername string
	Groups          []string
	Scope           string
	Email           string

	want  map[string]struct{} // extra claims to keep; nil: none
	extra map[string][]string // kept extra claims, as strings
}

// decoder is a reusable JSON tokenizer over one segment.
type decoder struct {
	buf bytes.Buffer
	dec *jsontext.Decoder
}

var decoders = sync.Pool{New: func() any {
	d := &decoder{}
	d.dec = jsontext.NewDecoder(&d.buf)
	return d
}}

func getDecoder(data []byte) *decoder {
	d := decoders.Get().(*decoder)
	d.buf.Reset()
	d.buf.Write(data)
	d.dec.Reset(&d.buf) // defaults: duplicate names and invalid UTF-8 are errors
	return d
}

func putDecoder(d *decoder) {
	if d.buf.Cap() > 16<<10 {
		return // do not keep a large token's buffer
	}
	decoders.Put(d)
}

// errType marks a value of the wrong JSON type for its name.
var errType = errors.New("wrong JSON type")

// object calls member for each name of the single JSON object in data, with the decoder positioned at the
// name's value; member must consume the value. Anything after the object is an error.
func object(data []byte, member func(name string, dec *jsontext.Decoder) error) error {
	d := getDecoder(data)
	defer putDecoder(d)
	dec := d.dec
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() != '{' {
		return fmt.Errorf("%w: want an object, have %v", errType, tok.Kind())
	}
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		if err := member(tok.String(), dec); err != nil {
			return err
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	if _, err := dec.ReadToken(); err == nil {
		return errors.New("data after the object")
	} else if !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// forbiddenHeaders would point verification at keys or rules the token chooses itself. None is honoured;
// a token carrying one is refused outright. https://www.rfc-editor.org/rfc/rfc8725#section-3.10
var forbiddenHeaders = map[string]struct{}{"jku": {}, "x5u": {}, "jwk": {}, "x5c": {}, "crit": {}}

// decodeHeader reads a JOSE header. A duplicate name is ErrHeader; other JSON errors are ErrMalformed.
func decodeHeader(data []byte) (header, error) {
	var h header
	err := object(data, func(name string, dec *jsontext.Decoder) error {
		switch name {
		case "alg":
			s, ok, err := readString(dec)
			h.alg, h.algSet = s, ok
			return ignoreType(err)
		case "kid":
			s, ok, err := readString(dec)
			h.kid, h.kidValid = s, ok
			return ignoreType(err)
		}
		if _, bad := forbiddenHeaders[name]; bad && h.forbidden == "" {
			h.forbidden = name
		}
		return dec.SkipValue()
	})
	switch {
	case errors.Is(err, jsontext.ErrDuplicateName):
		return header{}, fmt.Errorf("%w: a parameter appears twice: %w", ErrHeader, err)
	case err != nil:
		return header{}, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	return h, nil
}

// ignoreType drops errType: a header alg or kid of another type counts as absent (ErrAlgorithm,
// ErrKIDMissing), as golang-jwt judged it.
func ignoreType(err error) error {
	if errors.Is(err, errType) {
		return nil
	}
	return err
}

// decode reads the payload into c. A duplicate name or a known claim of the wrong type is ErrClaims;
// JSON that does not parse is ErrMalformed.
func (c *claims) decode(data []byte) error {
	err := object(data, func(name string, dec *jsontext.Decoder) error {
		if _, keep := c.want[name]; keep {
			raw, err := dec.ReadValue()
			if err != nil {
				return err
			}
			if vals, ok := claimStrings(raw); ok {
				if c.extra == nil {
					c.extra = make(map[string][]string, len(c.want))
				}
				c.extra[name] = vals
			}
			if !knownClaim(name) {
				return nil
			}
			// A kept claim the verifier also reads: decode the same bytes for it.
			sub := getDecoder(raw)
			defer putDecoder(sub)
			return c.member(name, sub.dec)
		}
		return c.member(name, dec)
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errType), errors.Is(err, jsontext.ErrDuplicateName), errors.Is(err, ErrClaims):
		return fmt.Errorf("%w: %w", ErrClaims, err)
	default:
		return fmt.Errorf("%w: claims: %w", ErrMalformed, err) // not JSON, or not one object
	}
}

func knownClaim(name string) bool {
	switch name {
	case "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "token_use", "client_id", "username",
		"cognito:username", "cognito:groups", "scope", "email":
		return true
	}
	return false
}

// member decodes one claim by its exact name; the values of unknown names are skipped.
func (c *claims) member(name string, dec *jsontext.Decoder) error {
	var err error
	str := func(p *string) { *p, _, err = readString(dec) }
	switch name {
	case "iss":
		str(&c.Iss)
	case "sub":
		str(&c.Sub)
	case "jti":
		str(&c.JTI)
	case "token_use":
		str(&c.TokenUse)
	case "client_id":
		str(&c.ClientID)
	case "username":
		str(&c.Username)
	case "cognito:username":
		str(&c.CognitoUsername)
	case "scope":
		str(&c.Scope)
	case "email":
		str(&c.Email)
	case "cognito:groups":
		c.Groups, err = readStrings(dec)
	case "aud":
		if dec.PeekKind() == '[' {
			c.AudArray = true
			c.Aud, err = readStrings(dec)
		} else {
			var s string
			var ok bool
			if s, ok, err = readString(dec); ok {
				c.Aud = []string{s}
			}
		}
	case "exp":
		err = readTime(dec, &c.Exp)
	case "nbf":
		err = readTime(dec, &c.Nbf)
	case "iat":
		err = readTime(dec, &c.Iat)
	default:
		err = dec.SkipValue()
	}
	return err
}

// readTime reads a NumericDate.
func readTime(dec *jsontext.Decoder, u *unixTime) error {
	raw, err := dec.ReadValue()
	if err != nil {
		return err
	}
	return u.UnmarshalJSON(raw)
}

// readString reads a string, or null as "" (ok false). Any other value is consumed and errType.
func readString(dec *jsontext.Decoder) (string, bool, error) {
	switch dec.PeekKind() {
	case '"':
		tok, err := dec.ReadToken()
		if err != nil {
			return "", false, err
		}
		return tok.String(), true, nil
	case 'n':
		_, err := dec.ReadToken()
		return "", false, err
	}
	k := dec.PeekKind()
	if err := dec.SkipValue(); err != nil {
		return "", false, err
	}
	return "", false, fmt.Errorf("%w: want a string, have %v", errType, k)
}

// readStrings reads an array of strings, or null as nil.
func readStrings(dec *jsontext.Decoder) ([]string, error) {
	switch dec.PeekKind() {
	case 'n':
		_, err := dec.ReadToken()
		return nil, err
	case '[':
	default:
		k := dec.PeekKind()
		if err := dec.SkipValue(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: want an array of strings, have %v", errType, k)
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
	}
	ss := []string{}
	for dec.PeekKind() != ']' {
		if dec.PeekKind() != '"' {
			return nil, fmt.Errorf("%w: want an array of strings", errType)
		}
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		ss = append(ss, tok.String())
	}
	_, err := dec.ReadToken()
	return ss, err
}

// claimStrings renders a claim as strings: a string as itself, a list of strings as its items, a number
// or boolean as its JSON text. Objects, null and mixed lists have no faithful string form and are dropped.
func claimStrings(raw jsontext.Value) ([]string, bool) {
	switch raw.Kind() {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		return []string{s}, true
	case '[':
		var ss []string
		if json.Unmarshal(raw, &ss) != nil {
			return nil, false
		}
		return ss, true
	case 't', 'f':
		return []string{string(raw)}, true
	case '0':
		if _, err := strconv.ParseFloat(string(raw), 64); err != nil {
			return nil, false
		}
		return []string{string(raw)}, true
	default:
		return nil, false
	}
}

// maxUnix bounds a NumericDate: 3000-01-01. Larger numbers are not times a Cognito token can carry, and
// floats beyond int64 would overflow time.Unix.
const maxUnix = 32503680000

// unixTime is a NumericDate (RFC 7519 §2) that must be a sane positive number of seconds.
type unixTime struct {
	time.Time
	set bool
}

// UnmarshalJSON accepts a JSON number between 1 and maxUnix; anything else is ErrClaims.
func (u *unixTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return fmt.Errorf("%w: time claim is null", ErrClaims)
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || b[0] == '"' {
		return fmt.Errorf("%w: time claim %.20q is not a number", ErrClaims, b)
	}
	if math.IsNaN(f) || f < 1 || f > maxUnix {
		return fmt.Errorf("%w: time claim %s is out of range", ErrClaims, b)
	}
	sec, frac := math.Modf(f)
	u.Time, u.set = time.Unix(int64(sec), int64(frac*1e9)), true
	return nil
}

func (u unixTime) numeric() (*jwt.NumericDate, error) {
	if !u.set {
		return nil, nil
	}
	return jwt.NewNumericDate(u.Time), nil
}

// The jwt.Claims methods let golang-jwt's validator check exp, nbf and iat with its leeway and clock.

func (c *claims) GetExpirationTime() (*jwt.NumericDate, error) { return c.Exp.numeric() }
func (c *claims) GetNotBefore() (*jwt.NumericDate, error)      { return c.Nbf.numeric() }
func (c *claims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.Iat.numeric() }
func (c *claims) GetIssuer() (string, error)                   { return c.Iss, nil }
func (c *claims) GetSubject() (string, error)                  { return c.Sub, nil }
func (c *claims) GetAudience() (jwt.ClaimStrings, error)       { return c.Aud, nil }
