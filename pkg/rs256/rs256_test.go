package rs256_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/rs256"
)

// testKeys are the pre-generated test keys in testdata (2048, 3072 and 4096 bits; test use only):
// generating RSA keys per test is slow, under -race most of all.
var testKeys = sync.OnceValues(func() ([]*rsa.PrivateKey, error) {
	var keys []*rsa.PrivateKey
	for _, bits := range []int{2048, 3072, 4096} {
		b, err := os.ReadFile(fmt.Sprintf("testdata/rsa%d.pem", bits))
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("rsa%d.pem: no PEM block", bits)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k.(*rsa.PrivateKey))
	}
	return keys, nil
})

func mustKeys(tb testing.TB) []*rsa.PrivateKey {
	tb.Helper()
	keys, err := testKeys()
	if err != nil {
		tb.Fatal(err)
	}
	return keys
}

func mustPublic(tb testing.TB, k *rsa.PrivateKey) *rs256.PublicKey {
	tb.Helper()
	pk, err := rs256.NewPublicKey(&k.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	return pk
}

func sign(tb testing.TB, k *rsa.PrivateKey, msg []byte) []byte {
	tb.Helper()
	h := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, h[:])
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

// rawSign is the RSA private operation on em, with no padding: it lets a test sign an encoded message
// that no honest signer would produce.
func rawSign(k *rsa.PrivateKey, em []byte) []byte {
	c := new(big.Int).SetBytes(em)
	c.Mod(c, k.N)
	// By the Chinese remainder theorem, a quarter of the work of c^d mod n (the fuzz target signs a lot).
	p, q := k.Primes[0], k.Primes[1]
	m1 := new(big.Int).Exp(c, k.Precomputed.Dp, p)
	m2 := new(big.Int).Exp(c, k.Precomputed.Dq, q)
	h := m1.Sub(m1, m2)
	h.Mul(h, k.Precomputed.Qinv).Mod(h, p)
	m := h.Mul(h, q).Add(h, m2)
	return m.FillBytes(make([]byte, k.Size()))
}

// encoded is the EMSA-PKCS1-v1_5 encoding of msg's SHA-256 for a key of size bytes.
func encoded(size int, msg []byte) []byte {
	prefix := []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	h := sha256.Sum256(msg)
	em := make([]byte, size)
	em[1] = 1
	t := append(prefix, h[:]...)
	for i := 2; i < size-len(t)-1; i++ {
		em[i] = 0xff
	}
	copy(em[size-len(t):], t)
	return em
}

func TestNewPublicKey(t *testing.T) {
	t.Parallel()
	k := mustKeys(t)[0]
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	huge := new(big.Int).Lsh(big.NewInt(1), rs256.MaxBits) // 8193 bits once made odd
	huge.SetBit(huge, 0, 1)
	even := new(big.Int).SetBit(new(big.Int).Set(k.N), 0, 0)
	tests := []struct {
		name    string
		pub     *rsa.PublicKey
		wantErr error
	}{
		{name: "rsa2048", pub: &k.PublicKey},
		{name: "rsa3072", pub: &mustKeys(t)[1].PublicKey},
		{name: "rsa4096", pub: &mustKeys(t)[2].PublicKey},
		{name: "e3", pub: &rsa.PublicKey{N: k.N, E: 3}, wantErr: rs256.ErrExponent},
		{name: "e1", pub: &rsa.PublicKey{N: k.N, E: 1}, wantErr: rs256.ErrExponent},
		{name: "e65539", pub: &rsa.PublicKey{N: k.N, E: 65539}, wantErr: rs256.ErrExponent},
		{name: "rsa1024", pub: &small.PublicKey, wantErr: rs256.ErrKeyTooSmall},
		{name: "rsa2047", pub: &rsa.PublicKey{N: new(big.Int).Rsh(k.N, 1), E: 65537}, wantErr: rs256.ErrKeyTooSmall},
		{name: "over_8192_bits", pub: &rsa.PublicKey{N: huge, E: 65537}, wantErr: rs256.ErrKeyTooLarge},
		{name: "even_modulus", pub: &rsa.PublicKey{N: even, E: 65537}, wantErr: rs256.ErrKeyInvalid},
		{name: "nil_modulus", pub: &rsa.PublicKey{E: 65537}, wantErr: rs256.ErrKeyInvalid},
		{name: "nil", wantErr: rs256.ErrKeyInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pk, err := rs256.NewPublicKey(tt.pub)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewPublicKey() error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (pk.Size() != tt.pub.Size() || pk.Bits() != tt.pub.N.BitLen()) {
				t.Errorf("Size(), Bits() = %d, %d; want %d, %d", pk.Size(), pk.Bits(), tt.pub.Size(), tt.pub.N.BitLen())
			}
		})
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t)
	k := keys[0]
	pk := mustPublic(t, k)
	msg := []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9")
	good := sign(t, k, msg)
	flip := func(b []byte, i int) []byte { c := append([]byte(nil), b...); c[i] ^= 1; return c }
	em := encoded(k.Size(), msg)
	// EM variants a parsing verifier might accept: each is signed with the real key, so only the
	// comparison of the whole encoding can refuse them.
	shortPad := append(append([]byte{0, 1, 0xff, 0xff, 0}, em[len(em)-51:]...), make([]byte, len(em)-56)...)
	tests := []struct {
		name string
		msg  []byte
		sig  []byte
		ok   bool
	}{
		{name: "valid", msg: msg, sig: good, ok: true},
		{name: "other_message", msg: append([]byte("x"), msg...), sig: good},
		{name: "bit_flipped_first", msg: msg, sig: flip(good, 0)},
		{name: "bit_flipped_last", msg: msg, sig: flip(good, len(good)-1)},
		{name: "truncated", msg: msg, sig: good[:len(good)-1]},
		{name: "leading_zero_added", msg: msg, sig: append([]byte{0}, good...)},
		{name: "empty", msg: msg},
		{name: "all_zero", msg: msg, sig: make([]byte, k.Size())},
		{name: "one", msg: msg, sig: append(make([]byte, k.Size()-1), 1)},
		{name: "modulus_itself", msg: msg, sig: k.N.FillBytes(make([]byte, k.Size()))},
		{name: "sig_plus_modulus", msg: msg, sig: new(big.Int).Add(new(big.Int).SetBytes(good), k.N).Bytes()},
		{name: "signed_by_other_key", msg: msg, sig: sign(t, keys[1], msg)[:k.Size()]},
		{name: "em_exact_raw_signed", msg: msg, sig: rawSign(k, em), ok: true},
		{name: "em_block_type_2", msg: msg, sig: rawSign(k, func() []byte { e := append([]byte(nil), em...); e[1] = 2; return e }())},
		{name: "em_padding_byte_changed", msg: msg, sig: rawSign(k, func() []byte { e := append([]byte(nil), em...); e[10] = 0xfe; return e }())},
		{name: "em_short_padding_trailing_garbage", msg: msg, sig: rawSign(k, shortPad)},
		{name: "em_digestinfo_null_dropped", msg: msg, sig: rawSign(k, func() []byte { e := append([]byte(nil), em...); e[len(e)-35] = 0xff; return e }())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := pk.Verify(tt.msg, tt.sig)
			if (err == nil) != tt.ok {
				t.Fatalf("Verify() error = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, rs256.ErrVerification) {
				t.Errorf("Verify() error = %v, want %v", err, rs256.ErrVerification)
			}
			h := sha256.Sum256(tt.msg)
			if std := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, h[:], tt.sig); (std == nil) != tt.ok {
				t.Errorf("crypto/rsa disagrees with the table: error = %v, want ok %v", std, tt.ok)
			}
		})
	}
}

func TestEqual(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t)
	a, b, c := mustPublic(t, keys[0]), mustPublic(t, keys[0]), mustPublic(t, keys[1])
	if !a.Equal(b) || a.Equal(c) || a.Equal(nil) {
		t.Errorf("Equal: same key %v (want true), other key %v (want false), nil %v (want false)", a.Equal(b), a.Equal(c), a.Equal(nil))
	}
}

// FuzzVerify is a differential test against crypto/rsa: for moduli of 2048, 3072 and 4096 bits, random
// signatures, mutated valid signatures, mutated messages and mutated encoded messages signed with the real
// key must get the same accept or reject from both.
func FuzzVerify(f *testing.F) {
	keys := mustKeys(f)
	pks := make([]*rs256.PublicKey, len(keys))
	for i, k := range keys {
		pks[i] = mustPublic(f, k)
		if _, err := rs256.NewPublicKey(&rsa.PublicKey{N: k.N, E: 3}); !errors.Is(err, rs256.ErrExponent) {
			f.Fatalf("NewPublicKey(e=3) error = %v, want %v", err, rs256.ErrExponent)
		}
	}
	for mode := range uint8(4) {
		for which := range uint8(3) {
			f.Add(which, mode, []byte("header.payload"), []byte{0xff, 0x00}, uint16(0))
			f.Add(which, mode, []byte(""), []byte{}, uint16(5))
			f.Add(which, mode, []byte("a.b"), []byte{1, 2, 3}, uint16(0xffff))
		}
	}
	f.Fuzz(func(t *testing.T, which, mode uint8, msg, data []byte, pos uint16) {
		k, pk := keys[int(which)%len(keys)], pks[int(which)%len(keys)]
		size := k.Size()
		verifyMsg := msg
		var sig []byte
		wantOK := false // true: the input is a genuine signature both must accept
		switch mode % 4 {
		case 0: // arbitrary bytes, any length
			sig = data
		case 1: // a valid signature, possibly with one bit flipped
			sig = sign(t, k, msg)
			if i := int(pos) / 8; i < len(sig) && len(data) > 0 && data[0]&1 == 1 {
				sig[i] ^= 1 << (pos % 8)
			} else {
				wantOK = true
			}
		case 2: // a valid signature of a message that differs from the one verified
			sig = sign(t, k, msg)
			verifyMsg = append(append([]byte(nil), msg...), data...)
			wantOK = len(data) == 0
		case 3: // the encoded message with bytes overwritten, signed by the raw private operation
			em := encoded(size, msg)
			changed := false
			for j, b := range data {
				if i := (int(pos) + j) % size; em[i] != b {
					em[i], changed = b, true
				}
			}
			sig = rawSign(k, em)
			wantOK = !changed
		}
		h := sha256.Sum256(verifyMsg)
		std := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, h[:], sig)
		got := pk.Verify(verifyMsg, sig)
		if (got == nil) != (std == nil) {
			t.Fatalf("rs256 error = %v, crypto/rsa error = %v (bits %d, mode %d, sig %x)", got, std, k.N.BitLen(), mode%4, sig)
		}
		if wantOK && got != nil {
			t.Fatalf("genuine signature refused: %v", got)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	for _, k := range mustKeys(b) {
		pk := mustPublic(b, k)
		msg := []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9")
		sig := sign(b, k, msg)
		h := sha256.Sum256(msg)
		b.Run(fmt.Sprintf("rs256/%d", k.N.BitLen()), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := pk.VerifyHash(h[:], sig); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("crypto_rsa/%d", k.N.BitLen()), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, h[:], sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
