package session

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"
)

// Session is one signed-in browser: the tokens and what the identity headers need that the access token
// lacks. It lives only in its encrypted cookie; nothing is kept server-side, so any replica serves it.
type Session struct {
	AccessToken  string
	RefreshToken string // empty when the app client issues none
	// Email and Claims come from the verified ID token (the access token carries neither): the identity
	// headers use them. Claims holds what the ID-token verifier was asked to keep.
	Email  string
	Claims map[string][]string
	// Issued is the sign-in; Expires is Issued plus the session max age and is not moved by a refresh, so a
	// stolen cookie dies with its session however often it is refreshed.
	Issued  time.Time
	Expires time.Time
	// AccessExpires is the access token's exp: refresh is due refresh_before it.
	AccessExpires time.Time
}

// Valid reports whether the session is still usable at now (the access token may have expired: refresh).
func (s *Session) Valid(now time.Time) bool { return s != nil && now.Before(s.Expires) }

// RefreshDue reports whether the access token expires within before of now and a refresh token exists.
func (s *Session) RefreshDue(now time.Time, before time.Duration) bool {
	return s.RefreshToken != "" && !now.Add(before).Before(s.AccessExpires)
}

// weight is about the memory s holds, for the cache's bound.
func (s *Session) weight() int {
	n := 256 + len(s.AccessToken) + len(s.RefreshToken) + len(s.Email)
	for k, vs := range s.Claims {
		n += len(k) + 16
		for _, v := range vs {
			n += len(v) + 16
		}
	}
	return n
}

// codecVersion leads every encoded session.
const codecVersion = 1

// Token kinds in the encoding: verbatim text, or dot-separated base64url segments stored decoded (a quarter
// smaller), used only when decoding and re-encoding gives back the same text.
const (
	tokenText     = 0
	tokenSegments = 1
)

var errCodec = errors.New("session: bad encoding")

// encode is the compact binary form of s: a version, three times as unix seconds, the two tokens, the
// e-mail and the ID-token claims, every field length-prefixed.
func (s *Session) encode() []byte {
	b := make([]byte, 0, 64+len(s.AccessToken)+len(s.RefreshToken))
	b = append(b, codecVersion)
	for _, t := range []time.Time{s.Issued, s.Expires, s.AccessExpires} {
		b = binary.AppendUvarint(b, uint64(max(t.Unix(), 0)))
	}
	b = appendToken(b, s.AccessToken)
	b = appendToken(b, s.RefreshToken)
	b = appendString(b, s.Email)
	b = binary.AppendUvarint(b, uint64(len(s.Claims)))
	for _, name := range slices.Sorted(maps.Keys(s.Claims)) {
		b = appendString(b, name)
		b = binary.AppendUvarint(b, uint64(len(s.Claims[name])))
		for _, v := range s.Claims[name] {
			b = appendString(b, v)
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendToken(b []byte, tok string) []byte {
	segs := strings.Split(tok, ".")
	decoded := make([][]byte, 0, len(segs))
	for _, s := range segs {
		d, err := base64.RawURLEncoding.Strict().DecodeString(s)
		if err != nil || base64.RawURLEncoding.EncodeToString(d) != s {
			return appendString(append(b, tokenText), tok)
		}
		decoded = append(decoded, d)
	}
	b = append(b, tokenSegments)
	b = binary.AppendUvarint(b, uint64(len(decoded)))
	for _, d := range decoded {
		b = binary.AppendUvarint(b, uint64(len(d)))
		b = append(b, d...)
	}
	return b
}

// decoder reads the encoding; the first error sticks, and every length is checked against what is left,
// so a hostile input cannot make it allocate more than its own size.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCodec
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errCodec
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) time() time.Time {
	v := d.uvarint()
	if v > 1<<40 {
		d.err = errCodec
	}
	return time.Unix(int64(v), 0)
}

func (d *decoder) token() string {
	if d.err != nil || len(d.b) == 0 {
		d.err = errCodec
		return ""
	}
	kind := d.b[0]
	d.b = d.b[1:]
	switch kind {
	case tokenText:
		return d.string()
	case tokenSegments:
		n := d.uvarint()
		if n == 0 || n > 8 {
			d.err = errCodec
			return ""
		}
		var sb strings.Builder
		for i := range n {
			if i > 0 {
				sb.WriteByte('.')
			}
			sb.WriteString(base64.RawURLEncoding.EncodeToString(d.bytes()))
		}
		return sb.String()
	default:
		d.err = errCodec
		return ""
	}
}

// decodeSession parses the encoding, refusing anything it did not write: a wrong version, a short or long
// input, counts beyond what the input can hold.
func decodeSession(b []byte) (*Session, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return nil, errCodec
	}
	d := &decoder{b: b[1:]}
	s := &Session{Issued: d.time(), Expires: d.time(), AccessExpires: d.time()}
	s.AccessToken, s.RefreshToken, s.Email = d.token(), d.token(), d.string()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return nil, errCodec
	}
	for range n {
		name := d.string()
		m := d.uvarint()
		if m > uint64(len(d.b)) {
			return nil, errCodec
		}
		vals := make([]string, 0, m)
		for range m {
			vals = append(vals, d.string())
		}
		if d.err != nil {
			break
		}
		if s.Claims == nil {
			s.Claims = map[string][]string{}
		}
		s.Claims[name] = vals
	}
	if d.err != nil || len(d.b) != 0 || s.AccessToken == "" {
		return nil, errCodec
	}
	return s, nil
}
