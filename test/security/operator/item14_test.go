package operator_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/test/poll"
)

// Item 14: an open shell was never re-authorised, so removal from the
// tenant, demotion to a role without agents:invoke, logout (token
// revocation) or the token's expiry left it running. Now every open shell
// is re-authenticated as its user every EXO_SHELL_REAUTH_INTERVAL (5 s) and
// ended with reason "revoked": exit message, close frame 1008, and the
// recorded session's end reason.
func TestItem14_RevokedShellEnds(t *testing.T) {
	const (
		// Tokens live 1 s, and exo-app accepts them 30 s past their expiry
		// (clock-skew leeway, pkg/platform/auth): every token of this test
		// stops authenticating about 31 s after it was issued.
		jwtExpiry = time.Second
		leeway    = 30 * time.Second
		reauth    = 5 * time.Second // the default interval
	)
	for _, backend := range platformtest.Backends {
		t.Run(backend, func(t *testing.T) {
			// The backends run side by side: most of this test is waiting
			// for the admin's token to expire.
			t.Parallel()
			a := startApp(t, backend, map[string]string{"EXO_JWT_EXPIRY": jwtExpiry.String()})
			admin := a.signup(t, "admin@item14.test")
			adminExpires := time.Now().Add(jwtExpiry + leeway)
			demoted := a.invite(t, admin, "demoted@item14.test", "")
			removed := a.invite(t, admin, "removed@item14.test", "")
			loggedOut := a.invite(t, admin, "logged-out@item14.test", "")
			var viewer struct{ ID string }
			a.must(t, http.StatusCreated, "POST", "/api/v1/roles", admin.token, map[string]any{"name": "viewer", "permissions": []string{"agents:read", "deployments:read"}}, &viewer)
			depID, tok := a.deployment(t, admin, "prod")
			if _, err := dialOperator(t, a, tok); err != nil {
				t.Fatal(err)
			}

			shells := map[string]*shellClient{}
			for _, u := range []user{admin, demoted, removed, loggedOut} {
				sh := a.openShell(t, u, depID, "default", "agent")
				if _, err := sh.next(t, "started", 10*time.Second); err != nil {
					t.Fatalf("%s: shell did not start: %v", u.email, err)
				}
				sh.echo(t, "hello from "+u.email)
				shells[u.email] = sh
			}

			// The attacks: each user keeps typing into a shell they should
			// no longer have.
			acted := time.Now()
			a.must(t, http.StatusOK, "PATCH", "/api/v1/users/"+demoted.userID, admin.token, map[string]string{"role_id": viewer.ID}, nil)
			a.must(t, http.StatusNoContent, "DELETE", "/api/v1/users/"+removed.userID, admin.token, nil, nil)
			a.must(t, http.StatusNoContent, "POST", "/api/v1/auth/logout", loggedOut.token, nil, nil)
			for _, u := range []user{demoted, removed, loggedOut} {
				expectRevoked(t, shells[u.email], u.email, time.Until(acted.Add(reauth+3*time.Second)))
			}
			if time.Now().After(adminExpires) {
				t.Fatal("the test was too slow: tokens expired before the revocations were checked")
			}
			// Nothing else broke: the admin's shell still works...
			shells[admin.email].echo(t, "still here")
			// ...until the admin's token expires.
			expectRevoked(t, shells[admin.email], admin.email, time.Until(adminExpires.Add(reauth+3*time.Second)))

			// The recorded sessions say why they ended.
			var login struct{ Token string }
			a.must(t, http.StatusOK, "POST", "/api/v1/auth/login", "", map[string]string{"email": admin.email, "password": "correct horse battery staple"}, &login)
			var sessions struct {
				Items []struct {
					UserEmail string `json:"user_email"`
					EndReason string `json:"end_reason"`
					Active    bool   `json:"active"`
				}
			}
			poll.UntilTrue(t, "four sessions recorded as revoked", 10*time.Second, func() bool {
				a.must(t, http.StatusOK, "GET", "/api/v1/sessions", login.Token, nil, &sessions)
				n := 0
				for _, s := range sessions.Items {
					if s.EndReason == "revoked" && !s.Active {
						n++
					}
				}
				return n == 4
			})
		})
	}
}

// expectRevoked waits for the exit message with reason revoked and the
// close frame 1008 that follows it.
func expectRevoked(t *testing.T, sh *shellClient, who string, within time.Duration) {
	t.Helper()
	start := time.Now()
	m, err := sh.next(t, "exit", max(within, time.Second))
	if err != nil {
		t.Fatalf("%s: the shell is still open %s later: %v", who, time.Since(start).Round(time.Millisecond), err)
	}
	if m.Reason != "revoked" {
		t.Fatalf("%s: exit %+v, want reason revoked", who, m)
	}
	_, err = sh.next(t, "none", 5*time.Second)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "revoked" {
		t.Fatalf("%s: close %v, want 1008 revoked", who, err)
	}
	t.Logf("%s: shell ended (revoked) %s after the wait began", who, time.Since(start).Round(time.Millisecond))
}
