package token

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claims is the payload of a Cognito access or ID token. Unknown claims are ignored, except the extra ones
// a verifier was asked to keep. A known claim of the wrong JSON type fails decoding with ErrClaims.
type claims struct {
	Iss             string           `json:"iss"`
	Sub             string           `json:"sub"`
	Aud             jwt.ClaimStrings `json:"aud"`
	Exp             unixTime         `json:"exp"`
	Nbf             unixTime         `json:"nbf"`
	Iat             unixTime         `json:"iat"`
	JTI             string           `json:"jti"`
	TokenUse        string           `json:"token_use"`
	ClientID        string           `json:"client_id"`
	Username        string           `json:"username"`
	CognitoUsername string           `json:"cognito:username"`
	Groups          []string         `json:"cognito:groups"`
	Scope           string           `json:"scope"`
	Email           string           `json:"email"`

	want  []string            // extra claims to keep
	extra map[string][]string // kept extra claims, as strings
}

// UnmarshalJSON decodes the known claims and keeps the wanted extra ones.
func (c *claims) UnmarshalJSON(data []byte) error {
	type plain claims
	if err := json.Unmarshal(data, (*plain)(c)); err != nil {
		return fmt.Errorf("%w: %w", ErrClaims, err)
	}
	if len(c.want) == 0 {
		return nil
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return fmt.Errorf("%w: %w", ErrClaims, err)
	}
	for _, name := range c.want {
		raw, ok := all[name]
		if !ok {
			continue
		}
		if vals, ok := claimStrings(raw); ok {
			if c.extra == nil {
				c.extra = make(map[string][]string, len(c.want))
			}
			c.extra[name] = vals
		}
	}
	return nil
}

// claimStrings renders a claim as strings: a string as itself, a list of strings as its items, a number
// or boolean as its JSON text. Objects, null and mixed lists have no faithful string form and are dropped.
func claimStrings(raw json.RawMessage) ([]string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, false
	}
	switch raw[0] {
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
	case '{', 'n':
		return nil, false
	default:
		if _, err := strconv.ParseFloat(string(raw), 64); err != nil {
			return nil, false
		}
		return []string{string(raw)}, true
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
