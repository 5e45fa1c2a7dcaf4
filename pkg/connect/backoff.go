package connect

import (
	"math/rand/v2"
	"time"
)

// backoff is exponential backoff with full jitter: the n-th wait is uniform
// in [0, min(max, initial·2ⁿ)). Full jitter spreads thousands of operators
// reconnecting after a platform restart over the whole window instead of
// synchronising them into waves.
type backoff struct {
	initial, max time.Duration
	attempt      int
}

func (b *backoff) next() time.Duration {
	ceiling := b.max
	if b.attempt < 32 {
		ceiling = min(b.max, b.initial<<b.attempt)
	}
	b.attempt++
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

func (b *backoff) reset() { b.attempt = 0 }
