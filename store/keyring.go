package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeySize is the length of a store key: AES-256.
const KeySize = 32

// Keyring encrypts revision payloads at rest with AES-256-GCM. The first key encrypts
// everything written; every key decrypts, so a key can be rotated: add the new one first,
// re-encrypt (SQLite.Reencrypt), then drop the old one. Each payload is stored with the id
// of the key that sealed it, so reading never has to guess.
type Keyring struct {
	keys []ringKey // keys[0] encrypts
}

type ringKey struct {
	id   string
	aead cipher.AEAD
}

// KeyID names a key without revealing it: a truncated SHA-256 of a fixed label and the
// key, stable whatever file the key is kept in.
func KeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("slipway store key id\x00"))
	h.Write(key)
	return "k" + hex.EncodeToString(h.Sum(nil)[:8])
}

// NewKeyring makes a keyring of 32-byte keys; the first encrypts.
func NewKeyring(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("a keyring needs at least one key")
	}
	kr := &Keyring{}
	seen := map[string]bool{}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("key %d has %d bytes, not %d", i+1, len(k), KeySize)
		}
		id := KeyID(k)
		if seen[id] {
			return nil, fmt.Errorf("key %d (%s) is given twice", i+1, id)
		}
		seen[id] = true
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		kr.keys = append(kr.keys, ringKey{id: id, aead: aead})
	}
	return kr, nil
}

// Primary is the id of the key that encrypts.
func (kr *Keyring) Primary() string { return kr.keys[0].id }

// IDs are the ids of every key, the encrypting one first.
func (kr *Keyring) IDs() []string {
	ids := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		ids[i] = k.id
	}
	return ids
}

func (kr *Keyring) has(id string) bool {
	for _, k := range kr.keys {
		if k.id == id {
			return true
		}
	}
	return false
}

// seal encrypts plain with the first key under a random nonce, bound to aad (the row it
// belongs to). The result is nonce || ciphertext || tag.
func (kr *Keyring) seal(plain, aad []byte) (keyID string, sealed []byte, err error) {
	k := kr.keys[0]
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("nonce: %w", err)
	}
	return k.id, k.aead.Seal(nonce, nonce, plain, aad), nil
}

// open decrypts what seal made with the key named id.
func (kr *Keyring) open(id string, sealed, aad []byte) ([]byte, error) {
	if kr != nil {
		for _, k := range kr.keys {
			if k.id != id {
				continue
			}
			n := k.aead.NonceSize()
			if len(sealed) < n+k.aead.Overhead() {
				return nil, fmt.Errorf("%w: %d bytes is too short for a sealed payload", ErrDecrypt, len(sealed))
			}
			plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], aad)
			if err != nil {
				return nil, fmt.Errorf("%w with key %s: the payload was altered or belongs to another row", ErrDecrypt, id)
			}
			return plain, nil
		}
	}
	return nil, &MissingKeyError{KeyID: id}
}

// ErrDecrypt means a payload did not decrypt: it was changed, moved from another row, or
// the key file holds a different key under a reused name (impossible by construction of
// KeyID, short of a collision).
var ErrDecrypt = errors.New("decrypt revision objects")

// MissingKeyError is a payload encrypted with a key the store was not given.
type MissingKeyError struct{ KeyID string }

func (e *MissingKeyError) Error() string {
	return fmt.Sprintf("revision objects are encrypted with key %s, which is not among the store's keys "+
		"(storeKeyFiles in slipway.yaml, or DATADIR/store.key): restore that key file", e.KeyID)
}

// ParseKey reads a key file's content: 32 raw bytes, or their standard base64 (what
// `openssl rand -base64 32` writes), surrounding white space ignored.
func ParseKey(data []byte) ([]byte, error) {
	if len(data) == KeySize {
		return bytes.Clone(data), nil
	}
	text := bytes.TrimSpace(data)
	key, err := base64.StdEncoding.DecodeString(string(text))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("holds %d bytes that are neither %d raw bytes nor their base64: make one with `openssl rand -base64 32`", len(data), KeySize)
	}
	return key, nil
}

// ReadKeyFile reads and parses a key file.
func ReadKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseKey(data)
}

// EnsureKeyFile creates path holding a new random key (base64, mode 0600) unless it
// exists; created says whether it did. The key is written to a temporary file first and
// linked into place, so a process opening the store at the same moment sees either no
// file or the whole key, and two starting together agree on one key.
func EnsureKeyFile(path string) (created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return false, err
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return false, err
	}
	f, err := os.CreateTemp(dir, ".store.key-*") // 0600
	if err != nil {
		return false, err
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	if err := os.Link(f.Name(), path); errors.Is(err, fs.ErrExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, nil
}

// WithKeyring encrypts revision payloads with kr. Without it they are kept in plaintext
// (compressed only), and encrypted ones cannot be read: Slipway itself always passes one.
func WithKeyring(kr *Keyring) Option { return func(o *options) { o.keyring = kr } }
