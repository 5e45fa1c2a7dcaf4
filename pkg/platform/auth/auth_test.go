package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestBackoffLocksPerKeyAndDoubles(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	b := NewBackoff(2, time.Second, 8*time.Second)
	b.now = func() time.Time { return now }
	for range 2 {
		b.Fail("a")
	}
	if d := b.Locked("a"); d != 0 {
		t.Fatalf("locked after the free failures: %s", d)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}
	for i, w := range want {
		b.Fail("a")
		if d := b.Locked("a"); d != w {
			t.Fatalf("failure %d over the free ones: locked %s, want %s", i+1, d, w)
		}
	}
	if d := b.Locked("b"); d != 0 {
		t.Fatalf("another key is locked too: %s", d)
	}
	now = now.Add(9 * time.Second)
	if d := b.Locked("a"); d != 0 {
		t.Fatalf("still locked after the lock ran out: %s", d)
	}
	b.Fail("a")
	b.Succeed("a")
	if d := b.Locked("a"); d != 0 {
		t.Fatalf("a success did not clear the key: %s", d)
	}
}

func TestHasherBoundsConcurrency(t *testing.T) {
	h := NewHasher(1, 50*time.Millisecond)
	started, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = h.do(context.Background(), func() { close(started); <-release })
	}()
	<-started
	if err := h.Dummy(context.Background(), "password"); !errors.Is(err, ErrBusy) {
		t.Fatalf("second hash while the only slot is taken: %v, want ErrBusy", err)
	}
	close(release)
	wg.Wait()
	hash, err := h.Hash(context.Background(), "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Verify(context.Background(), hash, "correct horse"); err != nil {
		t.Fatal(err)
	}
	if err := h.Verify(context.Background(), hash, "wrong"); !errors.Is(err, ErrPasswordMismatch) {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestTicketsAndTokensAreNotInterchangeable(t *testing.T) {
	i := NewIssuer([]byte("0123456789abcdef0123456789abcdef"), time.Hour)
	tok, _, err := i.Issue(Subject{UserID: "u", TenantID: "t", Generation: 3, TenantBound: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := i.Parse(tok)
	if err != nil || c.Generation != 3 || !c.TenantBound {
		t.Fatalf("claims %+v, %v", c, err)
	}
	ticket, err := i.IssueTicket("oidc-complete", Ticket{UserID: "u", BrowserHash: "h"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := i.Parse(ticket); err == nil {
		t.Fatal("a ticket was accepted as a user token")
	}
	if _, err := i.ParseTicket("oidc-complete", tok); err == nil {
		t.Fatal("a user token was accepted as a ticket")
	}
	if _, err := i.ParseTicket("oidc-link", ticket); err == nil {
		t.Fatal("a ticket was accepted for another purpose")
	}
	if got, err := i.ParseTicket("oidc-complete", ticket); err != nil || got.UserID != "u" || got.BrowserHash != "h" {
		t.Fatalf("ticket %+v, %v", got, err)
	}
	if CheckPasswordLength("short") == "" || CheckPasswordLength(string(make([]byte, MaxPasswordLength+1))) == "" || CheckPasswordLength("long enough") != "" {
		t.Fatal("password length rules")
	}
}
