package session

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the length of a session key: AES-256.
const KeySize = 32

// maxKeys bounds a key ring; rotation needs two or three.
const maxKeys = 16

// ErrKeys is wrapped by every error about the session keys file.
var ErrKeys = errors.New("session keys")

// sealVersion is the first byte of every sealed value; a new layout gets a new version.
const sealVersion = 1

// keyIDSize is the length of the key id in a sealed value: it names the key without revealing it.
const keyIDSize = 4

// sealOverhead is what sealing adds to a plaintext: version, key id, nonce and GCM tag.
const sealOverhead = 1 + keyIDSize + 12 + 16

// KeyRing holds the session keys: the first seals, every one opens, so keys rotate without signing anyone
// out (add a key, promote it to first, drop the old one after the session max age).
type KeyRing struct {
	keys []ringKey
}

type ringKey struct {
	id   [keyIDSize]byte
	aead cipher.AEAD
}

// ParseKeys reads the session_keys_file format: one key per line, each the standard base64 of 32 random
// bytes (`openssl rand -base64 32`). Blank lines and lines starting with # are ignored. The first key
// seals; all of them open. Errors name the line, never its content.
func ParseKeys(data []byte) (*KeyRing, error) {
	var raw [][]byte
	var problems []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 256), 4096)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.Strict().DecodeString(line)
		switch {
		case err != nil:
			problems = append(problems, fmt.Errorf("line %d: not standard base64", n))
		case len(k) != KeySize:
			problems = append(problems, fmt.Errorf("line %d: %d bytes, want %d (openssl rand -base64 32)", n, len(k), KeySize))
		default:
			raw = append(raw, k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %w", ErrKeys, n+1, err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrKeys, errors.Join(problems...))
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: no key (one per line: openssl rand -base64 32)", ErrKeys)
	}
	if len(raw) > maxKeys {
		return nil, fmt.Errorf("%w: %d keys, at most %d", ErrKeys, len(raw), maxKeys)
	}
	return NewKeyRing(raw...)
}

// LoadKeys reads and parses a session keys file.
func LoadKeys(path string) (*KeyRing, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeys, err)
	}
	return ParseKeys(data)
}

// NewKeyRing makes a ring of 32-byte keys, the first sealing. A key given twice is an error: it would mean
// a rotation that did not happen.
func NewKeyRing(keys ...[]byte) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no key", ErrKeys)
	}
	r := &KeyRing{}
	seen := map[[keyIDSize]byte]int{}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("%w: key %d is %d bytes, want %d", ErrKeys, i+1, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeys, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeys, err)
		}
		id := keyID(k)
		if j, dup := seen[id]; dup {
			return nil, fmt.Errorf("%w: key %d repeats key %d", ErrKeys, i+1, j+1)
		}
		seen[id] = i
		r.keys = append(r.keys, ringKey{id: id, aead: aead})
	}
	return r, nil
}

// keyID names a key in sealed values: a truncated hash under a fixed label, which says nothing of the key.
func keyID(k []byte) [keyIDSize]byte {
	h := sha256.Sum256(append([]byte("cognito-authz session key id\x00"), k...))
	return [keyIDSize]byte(h[:keyIDSize])
}

// seal encrypts plaintext with the first key, binding ad (the cookie's name) as additional data, so a
// value sealed for one cookie does not open as another.
func (r *KeyRing) seal(plaintext []byte, ad string) []byte {
	k := r.keys[0]
	out := make([]byte, 1+keyIDSize+12, sealOverhead+len(plaintext))
	out[0] = sealVersion
	copy(out[1:], k.id[:])
	nonce := out[1+keyIDSize:]
	rand.Read(nonce) // never fails (crypto/rand panics rather than return short)
	return k.aead.Seal(out, nonce, plaintext, []byte(ad))
}

// open decrypts a sealed value with the key its id names. Any failure (unknown key, tampering, another
// cookie's value) is false: callers treat it as no cookie.
func (r *KeyRing) open(sealed []byte, ad string) ([]byte, bool) {
	if len(sealed) < sealOverhead || sealed[0] != sealVersion {
		return nil, false
	}
	id := [keyIDSize]byte(sealed[1 : 1+keyIDSize])
	for _, k := range r.keys {
		if k.id != id {
			continue
		}
		pt, err := k.aead.Open(nil, sealed[1+keyIDSize:1+keyIDSize+12], sealed[1+keyIDSize+12:], []byte(ad))
		return pt, err == nil
	}
	return nil, false
}
