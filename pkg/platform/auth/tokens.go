package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
)

// DeploymentTokenPrefix marks deployment tokens so log scrubbers and support
// can recognise them.
const DeploymentTokenPrefix = "exo_dpl_"

var deploymentTokenRE = regexp.MustCompile(`^exo_dpl_[0-9a-f]{32}$`)

// NewDeploymentToken returns a fresh token (exo_dpl_ + 32 lowercase hex), its
// SHA-256 (the only thing stored) and the display prefix.
func NewDeploymentToken() (token, hash, prefix string, err error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", "", "", fmt.Errorf("random token: %w", err)
	}
	token = DeploymentTokenPrefix + hex.EncodeToString(b)
	return token, HashToken(token), DisplayPrefix(token), nil
}

// DisplayPrefix is what the UI shows after creation: the type marker plus
// four hex characters, enough to tell tokens apart, useless to an attacker.
func DisplayPrefix(token string) string {
	if len(token) < len(DeploymentTokenPrefix)+4 {
		return token
	}
	return token[:len(DeploymentTokenPrefix)+4]
}

// ValidDeploymentTokenFormat reports whether s looks like a deployment token.
func ValidDeploymentTokenFormat(s string) bool { return deploymentTokenRE.MatchString(s) }

// HashToken is the SHA-256 hex digest under which tokens are stored. Tokens
// carry 128+ bits of entropy, so a fast unsalted hash is sufficient.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokenMatches compares a presented token with a stored hash in constant time.
func TokenMatches(token, storedHash string) bool {
	return subtle.ConstantTimeCompare([]byte(HashToken(token)), []byte(storedHash)) == 1
}

// NewLinkToken returns a random single-use token for e-mail links
// (invitations, password resets) and its hash.
func NewLinkToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("random token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}
