package authz

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"

	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// CacheOptions bound the verified-token cache. MaxEntries 0 turns it off.
type CacheOptions struct {
	MaxEntries int   // at most this many tokens are held
	MaxBytes   int64 // and at most about this much memory, by the estimate of weigh
	// NegativeTTL is how long a token whose signature failed against a known key is answered from the
	// cache; 0 caches no failures.
	NegativeTTL time.Duration
	// OnHit and OnMiss, when set, are told of every lookup (metrics).
	OnHit, OnMiss func()
}

// tokenCache maps the SHA-256 digest of a raw token to what verifying it found. The key is the full digest,
// never a shorter hash: a collision would hand one caller another's identity, and SHA-256 has none anyone
// can find.
//
// What it holds is the verified identity and the headers built from it, never a decision: a rule of the
// policy may require more of the same identity on another route, so requirements are applied per request.
//
// An entry serves only while the verifier's own clock says the token would still verify (Identity.ValidAt)
// and while its signing key is still in its pool's key set (Identity.KeyHeld), checked on every hit. The
// cache library's expiry, set to the same instant, only decides when the memory is given back.
type tokenCache struct {
	c         *otter.Cache[[sha256.Size]byte, *entry]
	now       func() time.Time
	minWeight uint32
	negTTL    time.Duration
}

// entry is one token's verification result: an identity and its headers, or a cached deny.
type entry struct {
	id      *token.Identity // nil: a negative entry
	headers []Header        // shared by every Decision served from the entry: read-only
	remove  []string        // likewise
	unset   []string        // likewise
	reason  Reason          // negative entry: the deny
	err     error           // negative entry: its cause
	until   time.Time       // negative entry: serves while now is before it
	ttl     time.Duration   // when the cache library may drop it, measured from insertion
	weight  uint32
}

func newTokenCache(o CacheOptions, now func() time.Time) (*tokenCache, error) {
	if o.MaxEntries < 0 || o.MaxBytes < 0 || o.NegativeTTL < 0 {
		return nil, fmt.Errorf("authz: cache bounds must not be negative: %+v", o)
	}
	if o.MaxEntries == 0 {
		return nil, nil
	}
	if o.MaxBytes < minEntryBytes {
		return nil, fmt.Errorf("authz: cache max bytes %d holds no entry", o.MaxBytes)
	}
	// Both bounds through one weight: every entry weighs at least MaxBytes/MaxEntries, so the total weight
	// bound MaxBytes also caps the count at MaxEntries (otter takes a size or a weight bound, not both).
	minWeight := uint64(o.MaxBytes+int64(o.MaxEntries)-1) / uint64(o.MaxEntries)
	tc := &tokenCache{now: now, minWeight: uint32(min(minWeight, 1<<31)), negTTL: o.NegativeTTL}
	c, err := otter.New(&otter.Options[[sha256.Size]byte, *entry]{
		MaximumWeight:   uint64(o.MaxBytes),
		InitialCapacity: min(o.MaxEntries, 4096),
		Weigher:         func(_ [sha256.Size]byte, e *entry) uint32 { return e.weight },
		ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[[sha256.Size]byte, *entry]) time.Duration {
			return e.Value.ttl
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("authz: cache: %w", err)
	}
	tc.c = c
	return tc, nil
}

// key is the SHA-256 digest of the raw token. The token's bytes are hashed in place: sha256 does not keep
// its input, so there is no copy to allocate.
func key(raw string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
}

// lookup returns the entry for k if it may serve now. An entry that may not (expired, not yet valid, or its
// key removed from the JWKS) is dropped, and the caller verifies the token afresh.
func (tc *tokenCache) lookup(k [sha256.Size]byte) (*entry, bool) {
	e, ok := tc.c.GetIfPresent(k)
	if !ok {
		return nil, false
	}
	now := tc.now()
	if e.id == nil {
		if now.Before(e.until) {
			return e, true
		}
	} else if e.id.ValidAt(now) && e.id.KeyHeld() {
		return e, true
	}
	tc.c.Invalidate(k)
	return nil, false
}

// storeAllow caches a verified identity and its headers until the token stops verifying.
func (tc *tokenCache) storeAllow(k [sha256.Size]byte, id *token.Identity, d *Decision) {
	now := tc.now()
	if !id.ValidAt(now) {
		return // cannot happen for what Verify just accepted at now; never cache what would not verify
	}
	e := &entry{id: id, headers: d.Headers, remove: d.Remove, unset: d.Unset, ttl: id.Expires.Sub(now)}
	e.weight = max(weigh(e), tc.minWeight)
	tc.c.Set(k, e)
}

// storeDeny caches a failed signature check against a known key for NegativeTTL. Nothing else is cached as
// a deny: an unknown kid may become known on the next refresh, and keys_unavailable is a moment's state.
func (tc *tokenCache) storeDeny(k [sha256.Size]byte, r Reason, err error) {
	if tc.negTTL <= 0 || r != ReasonSignatureInvalid || !errors.Is(err, token.ErrSignature) {
		return
	}
	e := &entry{reason: r, err: err, until: tc.now().Add(tc.negTTL), ttl: tc.negTTL}
	e.weight = max(weigh(e), tc.minWeight)
	tc.c.Set(k, e)
}

// The estimate of an entry's memory, measured with TestCacheEntryCost: the otter node and its map slot,
// the entry, the Identity, and the slice headers of the headers set and removed. String bytes are added
// per entry; strings shared between the identity and its headers are counted once.
const (
	entryOverhead = 640
	minEntryBytes = entryOverhead
)

func weigh(e *entry) uint32 {
	n := entryOverhead + 24*len(e.headers) + 16*len(e.remove)
	if id := e.id; id != nil {
		for _, s := range [...]string{id.Pool, id.Subject, id.Username, id.ClientID, id.TokenUse, id.Email,
			id.Scope, id.JTI, id.KID} {
			n += roundUp(len(s))
		}
		for _, g := range id.Groups {
			n += 16 + roundUp(len(g)) + len(g) + 1 // the slice item, the string, its share of the joined header
		}
		for c, vs := range id.Claims {
			n += 64 + roundUp(len(c))
			for _, v := range vs {
				n += 16 + roundUp(len(v))
			}
		}
	}
	return uint32(min(n, 1<<31))
}

// roundUp is the allocation size class of a small string, near enough.
func roundUp(n int) int {
	if n == 0 {
		return 0
	}
	return (n + 15) &^ 15
}
