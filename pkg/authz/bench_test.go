package authz_test

import (
	"context"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
)

// BenchmarkCheck is one decision: cached (a token seen before), uncached (the cache off: a full
// verification), and a bad signature answered from the negative cache.
func BenchmarkCheck(b *testing.B) {
	for _, bc := range []struct {
		name   string
		cache  authz.CacheOptions
		tamper bool
		want   authz.Reason
	}{
		{name: "cached", cache: cacheOn, want: authz.ReasonOK},
		{name: "uncached", want: authz.ReasonOK},
		{name: "bad_signature_cached", cache: cacheOn, tamper: true, want: authz.ReasonSignatureInvalid},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newCached(b, bc.cache)
			tok := f.mint(b, 1)
			if bc.tamper {
				tok = tok[:len(tok)-6] + "AAAAAA"
			}
			req := bearer(tok)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if d := f.a.Check(ctx, req); d.Reason != bc.want {
					b.Fatalf("Check() = %s, want %s", d.Reason, bc.want)
				}
			}
		})
	}
}
