package authz

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// TestCacheEntryCost keeps weigh honest: the heap the cache really holds per Cognito-shaped entry must not
// exceed the estimate the bounds are enforced with.
func TestCacheEntryCost(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("measures the heap; not under -short or -race")
	}
	const n = 20_000
	now := time.Unix(1_800_000_000, 0)
	tc, err := newTokenCache(CacheOptions{MaxEntries: 2 * n, MaxBytes: 1 << 30}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	a := &Authorizer{opts: Options{ForwardToken: true, Headers: IdentityHeaders{Sub: "x-auth-sub", Username: "x-auth-username",
		Groups: "x-auth-groups", Scopes: "x-auth-scopes", ClientID: "x-auth-client-id", TokenUse: "x-auth-token-use",
		Email: "x-auth-email", Pool: "x-auth-pool"}}}
	a.names = a.opts.Headers.Names()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var weights uint64
	for i := range n {
		// Every string is its own allocation, as JSON decoding makes them.
		c := func(s string) string { return strings.Clone(s) }
		id := &token.Identity{Pool: c("main"), Subject: fmt.Sprintf("0b5f3c1e-7a2d-4c1b-9e0f-%012d", i), Username: fmt.Sprintf("user%06d", i),
			ClientID: c("3n4b5urk1ft4fl3mg5e62d9ado"), TokenUse: c("access"), Scope: c("aws.cognito.signin.user.admin openid email"),
			Groups: []string{c("users")}, JTI: fmt.Sprintf("3d9e5b4f-0000-4000-8000-%012d", i), KID: c("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG="),
			Expires: now.Add(time.Hour), NotBefore: now.Add(-time.Minute)}
		set, remove, unset := a.identityHeaders(id)
		d := Decision{Headers: set, Remove: remove, Unset: unset}
		var k [sha256.Size]byte
		binary.LittleEndian.PutUint64(k[:], uint64(i))
		tc.storeAllow(k, id, &d)
		weights += uint64(weigh(&entry{id: id, headers: d.Headers, remove: d.Remove, unset: d.Unset}))
	}
	tc.c.CleanUp()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := tc.c.EstimatedSize(); got != n {
		t.Fatalf("cache holds %d entries, want %d", got, n)
	}
	real := float64(after.HeapAlloc-before.HeapAlloc) / n
	est := float64(weights) / n
	t.Logf("per entry: %.0f bytes on the heap, %.0f estimated", real, est)
	if real > est {
		t.Errorf("an entry costs %.0f bytes, more than the %.0f the bounds assume: raise entryOverhead", real, est)
	}
	runtime.KeepAlive(tc)
}
