// Package auth holds the platform's credentials: password hashing, user
// JWTs, deployment and single-use link tokens, and login rate limiting.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argon2id parameters: the OWASP recommendation (19 MiB, 2 passes, 1 lane),
// a balance between resistance and login latency on small pods.
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
)

// MinPasswordLength and MaxPasswordLength (bytes) are enforced wherever a
// password is chosen. The maximum bounds what an anonymous caller makes the
// server hash.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 256
)

// CheckPasswordLength returns a message for a password of the wrong length.
func CheckPasswordLength(p string) string {
	switch {
	case len(p) < MinPasswordLength:
		return fmt.Sprintf("password must be at least %d characters", MinPasswordLength)
	case len(p) > MaxPasswordLength:
		return fmt.Sprintf("password must be at most %d bytes", MaxPasswordLength)
	}
	return ""
}

// ErrPasswordMismatch is returned by VerifyPassword for a wrong password.
var ErrPasswordMismatch = errors.New("password mismatch")

// HashPassword returns a PHC-formatted argon2id hash.
func HashPassword(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// dummyHash is verified against when the user does not exist, so that a
// login for an unknown e-mail costs the same time as one for a known e-mail.
var dummyHash, _ = HashPassword("exo-dummy-password-for-timing")

// VerifyPassword checks password against a hash made by HashPassword. An
// empty hash (OIDC-only user) never matches but still costs one hash.
func VerifyPassword(hash, password string) error {
	if hash == "" {
		hash = dummyHash
		password += "\x00never"
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return errors.New("unsupported password hash format")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return errors.New("unsupported argon2 version")
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return fmt.Errorf("parse argon2 parameters: %w", err)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return fmt.Errorf("decode salt: %w", err)
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return fmt.Errorf("decode key: %w", err)
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrPasswordMismatch
	}
	return nil
}

// CheckDummy burns the same time as a password check; used when the user is unknown.
func CheckDummy(password string) { _ = VerifyPassword(dummyHash, password+"\x00x") }
