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
