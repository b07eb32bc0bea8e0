package session

import (
	"net/http"
	"testing"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// BenchmarkLoad is the per-request cost a session adds before the access token meets the verified-token
// cache: read the cookie header, open the AES-GCM seal, decode the session; and StripCookies for the
// upstream's Cookie header.
func BenchmarkLoad(b *testing.B) {
	for _, tc := range []struct {
		name   string
		groups int
	}{{"typical", 2}, {"groups_50", 50}} {
		b.Run(tc.name, func(b *testing.B) {
			c := newCookies(CookieOptions{}, true)
			r, _ := NewKeyRing(make([]byte, KeySize))
			s := testSession()
			s.AccessToken = fakeJWT(950 + 28*tc.groups)
			s.RefreshToken = fakeJWT(1900)
			lines, _ := c.writeSession(r, s, time.Now(), nil)
			var header string
			for _, l := range lines {
				hc, _ := http.ParseSetCookie(l)
				if header != "" {
					header += "; "
				}
				header += hc.Name + "=" + hc.Value
			}
			header = "_ga=GA1.2.3; theme=dark; " + header
			req := Request{Method: "GET", Host: appHost, Path: "/", Headers: token.HeaderMap{"cookie": header}}
			for _, cached := range []bool{false, true} {
				f := &Flow{cookies: c, o: Options{Keys: r}, now: time.Now}
				name := "uncached"
				if cached {
					f.opened, _ = newOpenedCache(8 << 20)
					name = "cached"
				}
				b.Run(name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if f.Load(req) == nil {
							b.Fatal("no session")
						}
						_ = f.StripCookies(header)
					}
				})
			}
		})
	}
}

// fakeJWT is n bytes of three base64url segments, shaped like a JWT for the codec.
func fakeJWT(n int) string {
	seg := func(k int) string {
		b := make([]byte, k)
		for i := range b {
			b[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[i*7%64]
		}
		// A length of 4k+1 is no valid base64url; trim to a valid one.
		if len(b)%4 == 1 {
			b = b[:len(b)-1]
		}
		b[len(b)-1] = 'A' // zero trailing bits: canonical
		return string(b)
	}
	third := n / 3
	return seg(third) + "." + seg(third) + "." + seg(n-2*third-2)
}
