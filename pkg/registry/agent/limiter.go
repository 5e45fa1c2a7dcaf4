package agent

import (
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// StreamLimiter caps concurrent log and attach streams. kube-apiserver's max-in-flight and
// APF limits skip long-running requests, and so do this server's: without a cap of our own,
// a client opening streams in a loop would hold goroutines and agentlet connections without
// bound.
type StreamLimiter struct {
	slots chan struct{}
}

// NewStreamLimiter allows limit concurrent streams; limit < 1 allows none.
func NewStreamLimiter(limit int) *StreamLimiter {
	return &StreamLimiter{slots: make(chan struct{}, max(limit, 0))}
}

// TryAcquire takes a slot without waiting, or answers 429 with Retry-After. Call release
// when the stream ends.
func (l *StreamLimiter) TryAcquire() (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
		return func() { <-l.slots }, nil
	default:
		return nil, apierrors.NewTooManyRequests("too many log and attach streams are open on this server; retry later", RetryAfterSeconds)
	}
}

// InUse is how many streams are open.
func (l *StreamLimiter) InUse() int { return len(l.slots) }
