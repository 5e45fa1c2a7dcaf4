package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiter is a set of token buckets keyed by string (an e-mail address,
// a client address). Idle buckets are dropped so the map cannot grow without
// bound under a spray of distinct keys.
type RateLimiter struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	buckets map[string]*bucket
	lastGC  time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewRateLimiter allows perMinute events per key with a burst of burst.
func NewRateLimiter(perMinute, burst int) *RateLimiter {
	return &RateLimiter{
		limit:   rate.Limit(float64(perMinute) / 60),
		burst:   burst,
		buckets: map[string]*bucket{},
		lastGC:  time.Now(),
	}
}

// Allow consumes one event for key; when refused it also returns how long
// until the next event would be allowed (for Retry-After).
func (r *RateLimiter) Allow(key string) (bool, time.Duration) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.lastGC) > time.Minute {
		for k, b := range r.buckets {
			// A bucket idle long enough to have refilled is indistinguishable from a new one.
			if now.Sub(b.seen) > time.Duration(float64(r.burst)/float64(r.limit)*float64(time.Second))+time.Minute {
				delete(r.buckets, k)
			}
		}
		r.lastGC = now
	}
	b, ok := r.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(r.limit, r.burst)}
		r.buckets[key] = b
	}
	b.seen = now
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Backoff locks a key (a client address and an account) out for a growing
// time after repeated failures: free failures cost nothing, each one after
// that doubles the lock, up to max. A success forgets the key. Keyed by
// address and account together, a guesser elsewhere slows only itself and
// cannot lock the real user out.
type Backoff struct {
	mu     sync.Mutex
	free   int
	base   time.Duration
	max    time.Duration
	keys   map[string]*failures
	lastGC time.Time
	now    func() time.Time
}

type failures struct {
	n     int
	until time.Time
	last  time.Time
}

// NewBackoff allows free failures per key, then locks for base, 2×base, … up to max.
func NewBackoff(free int, base, max time.Duration) *Backoff {
	return &Backoff{free: free, base: base, max: max, keys: map[string]*failures{}, lastGC: time.Now(), now: time.Now}
}

// Locked reports how long key stays locked (0 when it may try now).
func (b *Backoff) Locked(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f := b.keys[key]; f != nil {
		if d := f.until.Sub(b.now()); d > 0 {
			return d
		}
	}
	return 0
}

// Fail records a failure for key.
func (b *Backoff) Fail(key string) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.lastGC) > time.Minute {
		for k, f := range b.keys {
			if now.Sub(f.last) > b.max && now.After(f.until) {
				delete(b.keys, k)
			}
		}
		b.lastGC = now
	}
	f := b.keys[key]
	if f == nil {
		f = &failures{}
		b.keys[key] = f
	}
	f.n++
	f.last = now
	if over := f.n - b.free; over > 0 {
		d := b.base << min(over-1, 30)
		if d <= 0 || d > b.max {
			d = b.max
		}
		f.until = now.Add(d)
	}
}

// Succeed forgets key.
func (b *Backoff) Succeed(key string) {
	b.mu.Lock()
	delete(b.keys, key)
	b.mu.Unlock()
}
