// Package poll is the tests' one way to wait for something another
// goroutine or process does: check, back off from 1 ms to 50 ms, check
// again, and fail the test with the last reason when time runs out.
package poll

import (
	"errors"
	"testing"
	"time"
)

// Until calls cond until it returns nil or d has passed; then it fails the
// test with cond's last error.
func Until(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	UntilNamed(t, "", d, cond)
}

// UntilNamed is Until whose failure also says what the test waited for.
func UntilNamed(t testing.TB, what string, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for delay := time.Millisecond; ; delay = min(delay*2, 50*time.Millisecond) {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			if what != "" {
				t.Fatalf("%s: after %s: %v", what, d, err)
			}
			t.Fatalf("after %s: %v", d, err)
		}
		time.Sleep(delay) // polling a condition of another goroutine or process, with backoff
	}
}

// UntilTrue is Until for a condition without a reason of its own: what
// says what the test was waiting for.
func UntilTrue(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	UntilNamed(t, what, d, func() error {
		if cond() {
			return nil
		}
		return errors.New("not yet")
	})
}
