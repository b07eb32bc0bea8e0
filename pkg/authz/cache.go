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
	MaxEntries int   // at most this many verified tokens are held
	MaxBytes   int64 // and at most about this much memory, by the estimate of weigh
	// NegativeTTL is how long a token whose signature failed against a known key is answered from the
	// cache; 0 caches no failures. Such failures have a budget of their own, on top of the one above:
	// 1/16 of MaxEntries and of MaxBytes (at least one entry), so a flood of bad signatures can never evict
	// a verified identity.
	NegativeTTL time.Duration
	// OnHit and OnMiss, when set, are told of every lookup (metrics).
	OnHit, OnMiss func()
}

// negativeShare is the part of each bound that failed signatures get in addition.
const negativeShare = 16

// tokenCache maps the SHA-256 digest of a raw token to what verifying it found. The key is the full digest,
// never a shorter hash: a collision would hand one caller another's identity, and SHA-256 has none anyone
// can find.
//
// What it holds is the verified identity and the headers built from it, never a decision: a rule of the
// policy may require more of the same identity on another route, so requirements are applied per request.
//
// An entry serves only while the verifier's own clock says the token would still verify (Identity.ValidAt)
// and while the very key that verified it is still the one its pool's key set holds under its kid
// (Identity.KeyHeld: a key removed, or replaced under the same kid, stops its tokens), checked on every
// hit. The cache library's expiry, set to the same instant, only decides when the memory is given back.
//
// Verified identities and failed signatures live in two caches with separate bounds: the failures are
// what an attacker can make at will, the identities are what the service is paid to keep warm.
type tokenCache struct {
	c         *otter.Cache[[sha256.Size]byte, *entry] // verified identities
	neg       *otter.Cache[[sha256.Size]byte, *entry] // failed signatures; nil when NegativeTTL is 0
	now       func() time.Time
	minWeight uint32 // of an identity: the count bound through the weight bound
	negWeight uint32 // of a failure: likewise, for its own bounds
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
	slot    Slot // the transport's encoding of headers and remove, filled on the first hit
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
	c, minWeight, err := newBounded(o.MaxEntries, o.MaxBytes)
	if err != nil {
		return nil, err
	}
	tc := &tokenCache{c: c, now: now, minWeight: minWeight, negTTL: o.NegativeTTL}
	if o.NegativeTTL > 0 {
		n, b := max(o.MaxEntries/negativeShare, 1), max(o.MaxBytes/negativeShare, minEntryBytes)
		if tc.neg, tc.negWeight, err = newBounded(n, b); err != nil {
			return nil, err
		}
	}
	return tc, nil
}

// newBounded makes one cache holding at most maxEntries entries and maxBytes of weight. Both bounds go
// through one weight: every entry weighs at least the returned minimum, maxBytes/maxEntries, so the total
// weight bound also caps the count (otter takes a size or a weight bound, not both).
func newBounded(maxEntries int, maxBytes int64) (*otter.Cache[[sha256.Size]byte, *entry], uint32, error) {
	minWeight := uint64(maxBytes+int64(maxEntries)-1) / uint64(maxEntries)
	c, err := otter.New(&otter.Options[[sha256.Size]byte, *entry]{
		MaximumWeight:   uint64(maxBytes),
		InitialCapacity: min(maxEntries, 64), // grown as entries come: a table made for thousands is ~1 MiB the GC marks every cycle
		Weigher:         func(_ [sha256.Size]byte, e *entry) uint32 { return e.weight },
		ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[[sha256.Size]byte, *entry]) time.Duration {
			return e.Value.ttl
		}),
	})
	if err != nil {
		return nil, 0, fmt.Errorf("authz: cache: %w", err)
	}
	return c, uint32(min(minWeight, 1<<31)), nil
}

// size is the number of entries held, of both kinds.
func (tc *tokenCache) size() int {
	n := tc.c.EstimatedSize()
	if tc.neg != nil {
		n += tc.neg.EstimatedSize()
	}
	return n
}

// key is the SHA-256 digest of the raw token. The token's bytes are hashed in place: sha256 does not keep
// its input, so there is no copy to allocate.
func key(raw string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
}

// lookup returns the entry for k if it may serve now. An entry that may not (expired, not yet valid, or its
// key no longer held) is dropped, and the caller verifies the token afresh.
func (tc *tokenCache) lookup(k [sha256.Size]byte) (*entry, bool) {
	if e, ok := tc.c.GetIfPresent(k); ok {
		if e.id.ValidAt(tc.now()) && e.id.KeyHeld() {
			return e, true
		}
		tc.c.Invalidate(k)
		return nil, false
	}
	if tc.neg == nil {
		return nil, false
	}
	if e, ok := tc.neg.GetIfPresent(k); ok {
		if tc.now().Before(e.until) {
			return e, true
		}
		tc.neg.Invalidate(k)
	}
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

// storeDeny caches a failed signature check against a known key for NegativeTTL, in the failures' own
// budget. Nothing else is cached as a deny: an unknown kid may become known on the next refresh, and
// keys_unavailable is a moment's state.
func (tc *tokenCache) storeDeny(k [sha256.Size]byte, r Reason, err error) {
	if tc.neg == nil || r != ReasonSignatureInvalid || !errors.Is(err, token.ErrSignature) {
		return
	}
	e := &entry{reason: r, err: err, until: tc.now().Add(tc.negTTL), ttl: tc.negTTL}
	e.weight = max(weigh(e), tc.negWeight)
	tc.neg.Set(k, e)
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
	if e.id != nil {
		n += slotBytes(e.headers, e.remove)
	}
	if id := e.id; id != nil {
		for _, f := range IdentityFields {
			if !f.list {
				n += roundUp(len(f.value(id)))
			}
		}
		n += roundUp(len(id.JTI)) + roundUp(len(id.KID))
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

// slotBytes estimates what a transport keeps in an entry's Slot once the token is used again: extauthz's
// pre-encoded allow is about the headers' names and values plus a few bytes of framing each, and its own
// small headers.
func slotBytes(headers []Header, remove []string) int {
	n := 96 + 16 // the encoded answer's headers, the boxed value
	for _, h := range headers {
		n += len(h.Name) + len(h.Value) + 16
	}
	for _, r := range remove {
		n += len(r) + 2
	}
	return roundUp(n)
}

// roundUp is the allocation size class of a small string, near enough.
func roundUp(n int) int {
	if n == 0 {
		return 0
	}
	return (n + 15) &^ 15
}
