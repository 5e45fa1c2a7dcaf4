package auth

import (
	"context"
	"errors"
	"time"
)

// ErrBusy is returned when every hashing slot stayed taken for the whole
// wait: the caller answers 503 with Retry-After.
var ErrBusy = errors.New("password hashing is at capacity")

// Hasher bounds how many argon2id computations (19 MiB each) run at once
// in the process, whoever asks: sign-up, sign-in, reset and invitations
// share it, so a flood of anonymous requests costs at most Slots × 19 MiB
// and a short queue, never memory in proportion to the requests.
type Hasher struct {
	slots chan struct{}
	wait  time.Duration
}

// NewHasher allows slots concurrent hashes; a caller waits at most wait for one.
func NewHasher(slots int, wait time.Duration) *Hasher {
	if slots < 1 {
		slots = 1
	}
	return &Hasher{slots: make(chan struct{}, slots), wait: wait}
}

func (h *Hasher) do(ctx context.Context, fn func()) error {
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-h.slots }()
	fn()
	return nil
}

// Hash is HashPassword within the bound.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	var out string
	var err error
	if berr := h.do(ctx, func() { out, err = HashPassword(password) }); berr != nil {
		return "", berr
	}
	return out, err
}

// Verify is VerifyPassword within the bound; ErrBusy or a context error
// when no slot came free.
func (h *Hasher) Verify(ctx context.Context, hash, password string) error {
	var err error
	if berr := h.do(ctx, func() { err = VerifyPassword(hash, password) }); berr != nil {
		return berr
	}
	return err
}

// Dummy is CheckDummy within the bound.
func (h *Hasher) Dummy(ctx context.Context, password string) error {
	return h.do(ctx, func() { CheckDummy(password) })
}
