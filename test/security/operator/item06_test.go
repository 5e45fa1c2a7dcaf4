package operator_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/pkg/tunnel"
	"github.com/exo-in-go/exo/test/poll"
)

// Item 6: rotating a deployment's token or deleting the deployment must
// close the operator connection made with the old token at once, so it
// stops receiving users' invocations and shells; the old token is then
// refused on reconnect.
func TestItem06_RotateAndDeleteCloseTheTunnel(t *testing.T) {
	for _, backend := range platformtest.Backends {
		t.Run(backend, func(t *testing.T) {
			a := startApp(t, backend, nil)
			admin := a.signup(t, "owner@item06.test")
			depID, oldToken := a.deployment(t, admin, "prod")

			op, err := dialOperator(t, a, oldToken)
			if err != nil {
				t.Fatal(err)
			}
			if err := op.snapshot(); err != nil {
				t.Fatal(err)
			}
			poll.UntilTrue(t, "the operator to be connected", 10*time.Second, func() bool { return a.cluster(t, admin, depID).Connected })

			// Attack: rotate (the token leaked) and hope the stolen
			// connection stays usable.
			var rotated struct{ Token string }
			start := time.Now()
			a.must(t, http.StatusOK, "POST", "/api/v1/deployments/"+depID+"/rotate", admin.token, nil, &rotated)
			code, ok := op.closed(3 * time.Second)
			if !ok {
				t.Fatal("the connection made with the rotated token is still open 3 s after the rotation")
			}
			if code != tunnel.CloseTokenRevoked {
				t.Fatalf("close code %d, want %d (token revoked)", code, tunnel.CloseTokenRevoked)
			}
			t.Logf("rotation closed the old connection after %s", time.Since(start).Round(time.Millisecond))

			// Invocations no longer reach anyone.
			st, body, _ := a.call(t, "POST", "/api/v1/deployments/"+depID+"/agents/default/a/invoke", admin.token, map[string]any{"input": "x", "timeout_seconds": 2})
			if st != http.StatusServiceUnavailable {
				t.Fatalf("invoke after rotation: %d %s, want 503 operator_offline", st, body)
			}
			// The old token is refused on reconnect.
			if _, err := dialOperator(t, a, oldToken); !isStatus(err, http.StatusUnauthorized) {
				t.Fatalf("reconnect with the rotated token: %v, want 401", err)
			}

			// Nothing else broke: the new token connects and serves.
			op2, err := dialOperator(t, a, rotated.Token)
			if err != nil {
				t.Fatalf("connect with the new token: %v", err)
			}
			if err := op2.snapshot(); err != nil {
				t.Fatal(err)
			}
			poll.UntilTrue(t, "the new connection to be live", 10*time.Second, func() bool { return a.cluster(t, admin, depID).Connected })
			if _, ok := op2.closed(1500 * time.Millisecond); ok {
				t.Fatalf("the connection with the current token was closed: %v", op2.err)
			}

			// A second deployment of the tenant is not affected by the first's deletion.
			otherID, otherToken := a.deployment(t, admin, "staging")
			other, err := dialOperator(t, a, otherToken)
			if err != nil {
				t.Fatal(err)
			}

			// Attack: the deployment is deleted; its connection must go too.
			a.must(t, http.StatusNoContent, "DELETE", "/api/v1/deployments/"+depID, admin.token, nil, nil)
			code, ok = op2.closed(3 * time.Second)
			if !ok {
				t.Fatal("the connection of a deleted deployment is still open 3 s after the deletion")
			}
			if code != tunnel.CloseTokenRevoked {
				t.Fatalf("close code %d after deletion, want %d", code, tunnel.CloseTokenRevoked)
			}
			if _, err := dialOperator(t, a, rotated.Token); !isStatus(err, http.StatusUnauthorized) {
				t.Fatalf("reconnect after deletion: %v, want 401", err)
			}
			if _, ok := other.closed(500 * time.Millisecond); ok {
				t.Fatalf("another deployment's connection was closed: %v", other.err)
			}
			if v := a.cluster(t, admin, otherID); !v.Connected {
				t.Fatalf("other deployment: %+v, want connected", v)
			}
		})
	}
}

func isStatus(err error, status int) bool {
	var he *tunnel.HandshakeError
	return errors.As(err, &he) && he.StatusCode == status
}
