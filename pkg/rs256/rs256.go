// Package rs256 verifies RSASSA-PKCS1-v1_5 SHA-256 signatures (JWS "RS256") against a public key whose
// modulus is precomputed once, when the key is loaded.
//
// crypto/rsa.VerifyPKCS1v15 rebuilds the Montgomery form of the public modulus (bigmod.NewModulus) on every
// call, about a third of its cost; Go caches that for private keys only. A PublicKey here keeps it, and each
// Verify is the exponentiation s^e mod n and one comparison. The arithmetic is filippo.io/bigmod, the
// standalone copy of the constant-time code crypto/rsa itself runs on.
//
// Verify never parses the decoded message: it builds the one encoding a valid signature can have,
// EM = 0x00 0x01 FF…FF 0x00 DigestInfo(SHA-256) hash (RFC 8017 §8.2.2 and §9.2), and compares the whole of
// it in constant time. That is the construction crypto/rsa uses, and it leaves no room for the padding
// and ASN.1 parsing bugs of verifiers that take EM apart (Bleichenbacher's e=3 forgery and its kin).
//
// Keys are refused at construction unless e = 65537 and the modulus has 2048 to 8192 bits: the exponent is
// the only one Cognito (and every sane JWKS) uses, small exponents are what signature forgeries exploit,
// short moduli can be factored, and long ones make every verification a denial-of-service lever.
package rs256

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"

	"filippo.io/bigmod"
)

// Bounds on the keys NewPublicKey accepts.
const (
	MinBits  = 2048
	MaxBits  = 8192
	Exponent = 65537
)

var (
	// ErrKeyTooSmall: the modulus has fewer than MinBits bits.
	ErrKeyTooSmall = errors.New("rsa modulus too small")
	// ErrKeyTooLarge: the modulus has more than MaxBits bits.
	ErrKeyTooLarge = errors.New("rsa modulus too large")
	// ErrExponent: the public exponent is not 65537.
	ErrExponent = errors.New("rsa exponent not 65537")
	// ErrKeyInvalid: the modulus is even or otherwise no RSA modulus.
	ErrKeyInvalid = errors.New("rsa key invalid")
	// ErrVerification: the signature does not verify.
	ErrVerification = errors.New("rs256: verification error")
)

// digestInfo is the DER prefix of DigestInfo for SHA-256 (RFC 8017 §9.2, note 1).
var digestInfo = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// PublicKey is an RSA public key prepared for RS256 verification. It is immutable and safe for concurrent
// use.
type PublicKey struct {
	pub *rsa.PublicKey
	n   *bigmod.Modulus
	// prefix is EM without the hash: 0x00 0x01 FF…FF 0x00 DigestInfo, len(prefix) = size - 32.
	prefix []byte
	size   int
}

// NewPublicKey checks pub and precomputes its modulus. The error wraps ErrKeyTooSmall, ErrKeyTooLarge,
// ErrExponent or ErrKeyInvalid.
func NewPublicKey(pub *rsa.PublicKey) (*PublicKey, error) {
	if pub == nil || pub.N == nil {
		return nil, fmt.Errorf("%w: no modulus", ErrKeyInvalid)
	}
	if pub.E != Exponent {
		return nil, fmt.Errorf("%w: e = %d", ErrExponent, pub.E)
	}
	bits := pub.N.BitLen()
	switch {
	case bits < MinBits:
		return nil, fmt.Errorf("%w: %d bits, want at least %d", ErrKeyTooSmall, bits, MinBits)
	case bits > MaxBits:
		return nil, fmt.Errorf("%w: %d bits, want at most %d", ErrKeyTooLarge, bits, MaxBits)
	case pub.N.Bit(0) == 0:
		return nil, fmt.Errorf("%w: even modulus", ErrKeyInvalid)
	}
	n, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyInvalid, err)
	}
	size := n.Size()
	prefix := make([]byte, size-sha256.Size)
	prefix[1] = 0x01
	for i := 2; i < len(prefix)-len(digestInfo)-1; i++ {
		prefix[i] = 0xff
	}
	copy(prefix[len(prefix)-len(digestInfo):], digestInfo) // the 0x00 separator precedes it, left zero
	cp := &rsa.PublicKey{N: new(big.Int).Set(pub.N), E: pub.E}
	return &PublicKey{pub: cp, n: n, prefix: prefix, size: size}, nil
}

// Size is the modulus length in bytes, which is also the length of every valid signature.
func (k *PublicKey) Size() int { return k.size }

// Bits is the modulus length in bits.
func (k *PublicKey) Bits() int { return k.n.BitLen() }

// Equal reports whether k and o are the same RSA key (same modulus and exponent).
func (k *PublicKey) Equal(o *PublicKey) bool {
	return k == o || (k != nil && o != nil && k.pub.Equal(o.pub))
}

// Verify checks that sig is an RS256 signature of signed (the JWS signing input) under k.
func (k *PublicKey) Verify(signed, sig []byte) error {
	h := sha256.Sum256(signed)
	return k.VerifyHash(h[:], sig)
}

// VerifyHash checks that sig is an RSASSA-PKCS1-v1_5 signature of the SHA-256 digest hashed under k. It
// returns nil or ErrVerification, and nothing else: which step refused a forgery is not the caller's
// business, nor an attacker's.
func (k *PublicKey) VerifyHash(hashed, sig []byte) error {
	// RFC 8017 §8.2.2 step 1: a signature is exactly as long as the modulus.
	if len(hashed) != sha256.Size || len(sig) != k.size {
		return ErrVerification
	}
	// Step 2.2 (RSAVP1): s must be below n; s^e mod n over the modulus built once.
	s, err := bigmod.NewNat().SetBytes(sig, k.n)
	if err != nil {
		return ErrVerification
	}
	em := bigmod.NewNat().ExpShortVarTime(s, Exponent, k.n).Bytes(k.n)
	// Steps 3 and 4: the expected encoding, compared whole. The prefix is public; only the comparison of
	// the hash part would matter for timing, and the whole is compared in constant time anyway.
	want := make([]byte, k.size)
	copy(want, k.prefix)
	copy(want[len(k.prefix):], hashed)
	if subtle.ConstantTimeCompare(em, want) != 1 {
		return ErrVerification
	}
	return nil
}
