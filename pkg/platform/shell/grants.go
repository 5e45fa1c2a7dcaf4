package shell

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"sync"
	"time"
)

// grantPrefix makes a grant recognisable in logs and secret scanners.
const grantPrefix = "exo_shg_"

var (
	errGrantInvalid = errors.New("unknown or already used shell grant")
	errGrantExpired = errors.New("shell grant expired")
	errTooManyGrant = errors.New("too many outstanding shell grants")
)

// grant is what a grant id entitles its holder to: one shell, once, soon.
type grant struct {
	hash         [sha256.Size]byte
	TenantID     string
	UserID       string
	UserEmail    string
	DeploymentID string
	Namespace    string
	Agent        string
	Cols, Rows   uint16
	ExpiresAt    time.Time
}

// grants holds outstanding grants in memory, keyed by the SHA-256 of the
// id: the id itself is never kept, so a heap dump or a debug endpoint
// reveals nothing redeemable. Memory (rather than the database) fits the
// shape of the feature: a grant lives for seconds and can only be redeemed
// on the exo-app replica that holds the deployment's operator tunnel
// anyway (see docs/shell.md, "Replicas").
type grants struct {
	mu  sync.Mutex
	m   map[[sha256.Size]byte]*grant
	max int
	now func() time.Time
}

func newGrants(max int, now func() time.Time) *grants {
	return &grants{m: map[[sha256.Size]byte]*grant{}, max: max, now: now}
}

// issue stores g and returns its id: 256 random bits, base64url.
func (gs *grants) issue(g grant) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := grantPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	g.hash = sha256.Sum256([]byte(id))
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if len(gs.m) >= gs.max {
		gs.purgeLocked()
		if len(gs.m) >= gs.max {
			return "", errTooManyGrant
		}
	}
	gs.m[g.hash] = &g
	return id, nil
}

// redeem consumes the grant: whatever happens next, the id is spent, so a
// second attempt (replay, or a stolen id racing its owner) always fails.
func (gs *grants) redeem(id string) (grant, error) {
	h := sha256.Sum256([]byte(id))
	gs.mu.Lock()
	g := gs.m[h]
	delete(gs.m, h)
	gs.mu.Unlock()
	// The map lookup is by hash, so its timing says nothing about which
	// grant ids exist; the compare below is constant time for good measure.
	if g == nil || subtle.ConstantTimeCompare(g.hash[:], h[:]) != 1 {
		return grant{}, errGrantInvalid
	}
	if !gs.now().Before(g.ExpiresAt) {
		return grant{}, errGrantExpired
	}
	return *g, nil
}

func (gs *grants) purgeLocked() {
	now := gs.now()
	for k, g := range gs.m {
		if !now.Before(g.ExpiresAt) {
			delete(gs.m, k)
		}
	}
}

// sweep drops expired grants; called periodically.
func (gs *grants) sweep() {
	gs.mu.Lock()
	gs.purgeLocked()
	gs.mu.Unlock()
}

// hashID names the grant on the tunnel and in the operator's logs: the hex
// of its hash's first 16 bytes, unique per grant but never redeemable.
func (g grant) hashID() string { return hex.EncodeToString(g.hash[:16]) }
