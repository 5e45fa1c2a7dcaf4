// Package crypto seals secrets that the platform must store and later use
// again (OIDC client secrets, integration credentials). Values are encrypted
// with AES-256-GCM under a key derived from EXO_ENCRYPTION_KEY with HKDF, so
// the root key itself never touches a cipher and can be rotated by adding a
// new version prefix later.
package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

const prefixV1 = "v1:"

// Box encrypts and decrypts small secrets.
type Box struct {
	aead cipher.AEAD
}

// NewBox derives the data key from a 32-byte root key.
func NewBox(rootKey []byte) (*Box, error) {
	if len(rootKey) != 32 {
		return nil, fmt.Errorf("encryption key must be 32 bytes, got %d", len(rootKey))
	}
	key, err := hkdf.Key(sha256.New, rootKey, nil, "exo-platform secrets-at-rest v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive data key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext. The associated data binds the ciphertext to its
// row (for example "idp:<id>") so a ciphertext copied to another row fails
// to open.
func (b *Box) Seal(plaintext, associatedData string) (string, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("nonce: %w", err)
	}
	ct := b.aead.Seal(nonce, nonce, []byte(plaintext), []byte(associatedData))
	return prefixV1 + base64.RawStdEncoding.EncodeToString(ct), nil
}

// Open decrypts a value produced by Seal with the same associated data.
func (b *Box) Open(sealed, associatedData string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, prefixV1)
	if !ok {
		return "", errors.New("unknown ciphertext version")
	}
	raw, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("decode ciphertext: %w", err)
	}
	ns := b.aead.NonceSize()
	if len(raw) < ns+b.aead.Overhead() {
		return "", errors.New("ciphertext too short")
	}
	pt, err := b.aead.Open(nil, raw[:ns], raw[ns:], []byte(associatedData))
	if err != nil {
		return "", errors.New("decrypt: authentication failed (wrong EXO_ENCRYPTION_KEY?)")
	}
	return string(pt), nil
}
