package operator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/platformtest"
)

// Item 9: one tenant could spend the global pool of 10,000 shell grants in
// seconds, and every tenant then got 503. Now a user holds at most 20
// outstanding grants and a tenant 200 (defaults), each refused with 429,
// Retry-After and a message that says which limit; other tenants keep
// getting grants.
func TestItem09_OneTenantCannotSpendAllShellGrants(t *testing.T) {
	const perUser, perTenant = 20, 200 // the defaults
	for _, backend := range platformtest.Backends {
		t.Run(backend, func(t *testing.T) {
			a := startApp(t, backend, nil)
			attacker := a.signup(t, "attacker@item09.test")
			depA, tokA := a.deployment(t, attacker, "a")
			victim := a.signup(t, "victim@item09.test")
			depV, tokV := a.deployment(t, victim, "v")
			for _, tok := range []string{tokA, tokV} {
				if _, err := dialOperator(t, a, tok); err != nil {
					t.Fatal(err)
				}
			}

			// Attack: one user asks for grants as fast as it can.
			created, refused := hammer(t, a, attacker, depA, 300)
			if created != perUser {
				t.Fatalf("one user got %d grants, want exactly %d", created, perUser)
			}
			checkRefusal(t, refused, "per user")

			// The same tenant's other members share the tenant's budget: ten
			// users reach it, the eleventh is refused by the tenant limit.
			total := created
			for i := range perTenant/perUser - 1 {
				m := a.invite(t, attacker, fmt.Sprintf("m%d@item09.test", i), "")
				c, _ := hammer(t, a, m, depA, perUser+5)
				total += c
			}
			if total != perTenant {
				t.Fatalf("the tenant got %d grants, want exactly %d", total, perTenant)
			}
			late := a.invite(t, attacker, "late@item09.test", "")
			c, refused := hammer(t, a, late, depA, 3)
			if c != 0 {
				t.Fatalf("a member of a tenant at its limit got %d grants", c)
			}
			checkRefusal(t, refused, "per tenant")

			// Nothing else broke: another tenant still gets a grant, and
			// the shell it opens works.
			sh := a.openShell(t, victim, depV, "default", "agent")
			if _, err := sh.next(t, "started", 10*time.Second); err != nil {
				t.Fatalf("the victim's shell did not start: %v", err)
			}
			sh.echo(t, "still-works")
		})
	}
}

type refusal struct {
	status     int
	retryAfter string
	message    string
}

// hammer asks for n grants concurrently; it returns how many were created
// and the refusals.
func hammer(t *testing.T, a *app, u user, depID string, n int) (int, []refusal) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	created := 0
	var refused []refusal
	sem := make(chan struct{}, 16)
	for range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			st, body, hdr := a.call(t, "POST", "/api/v1/deployments/"+depID+"/agents/default/agent/shell", u.token, map[string]int{"cols": 80, "rows": 24})
			mu.Lock()
			defer mu.Unlock()
			if st == http.StatusCreated {
				created++
				return
			}
			var e struct {
				Error struct{ Message string }
			}
			_ = json.Unmarshal(body, &e)
			refused = append(refused, refusal{st, hdr.Get("Retry-After"), e.Error.Message})
		})
	}
	wg.Wait()
	return created, refused
}

func checkRefusal(t *testing.T, refused []refusal, scope string) {
	t.Helper()
	if len(refused) == 0 {
		t.Fatalf("no refusal (%s)", scope)
	}
	for _, r := range refused {
		secs, err := strconv.Atoi(r.retryAfter)
		if r.status != http.StatusTooManyRequests || err != nil || secs < 1 || secs > 60 || !strings.Contains(r.message, scope) {
			t.Fatalf("refusal %+v: want 429, Retry-After in [1,60] s and a message naming the %s limit", r, scope)
		}
	}
	t.Logf("%d refused: %d, Retry-After %s, %q", len(refused), refused[0].status, refused[0].retryAfter, refused[0].message)
}
