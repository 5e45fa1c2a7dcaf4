package shell

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// grantPrefix makes a grant recognisable in logs and secret scanners.
const grantPrefix = "exo_shg_"

var (
	errGrantInvalid = errors.New("unknown or already used shell grant")
	errGrantExpired = errors.New("shell grant expired")
)

// limitError refuses a grant because a limit is full. RetryAfter is when
// the earliest outstanding grant that counts against it expires, so a
// client that waits that long finds room (unless it is taken meanwhile).
type limitError struct {
	Scope      string // "user", "tenant" or "global"
	Limit      int
	RetryAfter time.Duration
}

func (e *limitError) Error() string {
	return fmt.Sprintf("too many outstanding shell grants (%s limit %d)", e.Scope, e.Limit)
}

// grantLimits bound outstanding (issued, not yet redeemed or expired)
// grants. The per-tenant limit is far below the global one, so no single
// tenant can fill the pool and refuse every other tenant's shells.
type grantLimits struct {
	PerUser, PerTenant, Global int
}

// grant is what a grant id entitles its holder to: one shell, once, soon.
type grant struct {
	hash      [sha256.Size]byte
	TenantID  string
	UserID    string
	UserEmail string
	// Token is the bearer token of the request that asked for the grant
	// (or redeemed it). It is kept in memory only, so that an open shell can
	// be re-authorised as its user (Handler.reauthorize); it is never
	// logged, stored or sent anywhere.
	Token        string
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
	mu        sync.Mutex
	m         map[[sha256.Size]byte]*grant
	perUser   map[string]int // user id → outstanding grants
	perTenant map[string]int // tenant id → outstanding grants
	lim       grantLimits
	now       func() time.Time
}

func newGrants(lim grantLimits, now func() time.Time) *grants {
	return &grants{m: map[[sha256.Size]byte]*grant{}, perUser: map[string]int{}, perTenant: map[string]int{}, lim: lim, now: now}
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
	if gs.fullLocked(g) != nil {
		gs.purgeLocked()
		if err := gs.fullLocked(g); err != nil {
			return "", err
		}
	}
	gs.addLocked(&g)
	return id, nil
}

// fullLocked reports the first limit g does not fit, narrowest first, so a
// user is told about their own limit before their tenant's.
func (gs *grants) fullLocked(g grant) *limitError {
	var scope string
	var limit int
	var counts func(*grant) bool
	switch {
	case gs.perUser[g.UserID] >= gs.lim.PerUser:
		scope, limit, counts = "user", gs.lim.PerUser, func(o *grant) bool { return o.UserID == g.UserID }
	case gs.perTenant[g.TenantID] >= gs.lim.PerTenant:
		scope, limit, counts = "tenant", gs.lim.PerTenant, func(o *grant) bool { return o.TenantID == g.TenantID }
	case len(gs.m) >= gs.lim.Global:
		scope, limit, counts = "global", gs.lim.Global, func(*grant) bool { return true }
	default:
		return nil
	}
	// Refusals are the rare path; scanning the map (at most Global entries)
	// keeps issue and redeem free of per-scope expiry indexes.
	now := gs.now()
	retry := time.Duration(-1)
	for _, o := range gs.m {
		if counts(o) {
			if d := o.ExpiresAt.Sub(now); retry < 0 || d < retry {
				retry = d
			}
		}
	}
	return &limitError{Scope: scope, Limit: limit, RetryAfter: max(retry, time.Second)}
}

func (gs *grants) addLocked(g *grant) {
	gs.m[g.hash] = g
	gs.perUser[g.UserID]++
	gs.perTenant[g.TenantID]++
}

func (gs *grants) removeLocked(g *grant) {
	delete(gs.m, g.hash)
	dec := func(m map[string]int, k string) {
		if m[k] <= 1 {
			delete(m, k)
		} else {
			m[k]--
		}
	}
	dec(gs.perUser, g.UserID)
	dec(gs.perTenant, g.TenantID)
}

// redeem consumes the grant: whatever happens next, the id is spent, so a
// second attempt (replay, or a stolen id racing its owner) always fails.
func (gs *grants) redeem(id string) (grant, error) {
	h := sha256.Sum256([]byte(id))
	gs.mu.Lock()
	g := gs.m[h]
	if g != nil {
		gs.removeLocked(g)
	}
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
	for _, g := range gs.m {
		if !now.Before(g.ExpiresAt) {
			gs.removeLocked(g)
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
