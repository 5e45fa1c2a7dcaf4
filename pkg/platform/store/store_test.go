package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/perm"
	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/pkg/platform/store"
)

func open(t *testing.T, dsn string) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStore runs the same store checks on SQLite and PostgreSQL.
func TestStore(t *testing.T) {
	for _, backend := range platformtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dsn := platformtest.DSN(t, backend)
			s := open(t, dsn)
			if s.Dialect() != backend {
				t.Fatalf("dialect %s", s.Dialect())
			}
			// Migrations are idempotent: a second boot on the same database is a no-op.
			open(t, dsn)

			ua, ta, err := s.SignUp(ctx, store.User{Email: "a@x.example", PasswordHash: "h"}, "A")
			if err != nil {
				t.Fatal(err)
			}
			_, tb, err := s.SignUp(ctx, store.User{Email: "b@x.example", PasswordHash: "h"}, "B")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.SignUp(ctx, store.User{Email: "a@x.example"}, "dup"); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("duplicate e-mail: %v", err)
			}
			// The failed sign-up left no half-created tenant behind (transaction).
			ms, _ := s.ListMemberships(ctx, ua.ID)
			if len(ms) != 1 || ms[0].RoleName != "admin" {
				t.Fatalf("memberships %+v", ms)
			}

			d, err := s.CreateDeployment(ctx, ta.ID, store.Deployment{Name: "d", TokenPrefix: "exo_dpl_abcd"}, "hash-1")
			if err != nil {
				t.Fatal(err)
			}
			// Every tenant-scoped method refuses the other tenant's id.
			if _, err := s.GetDeployment(ctx, tb.ID, d.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("cross-tenant get: %v", err)
			}
			if err := s.DeleteDeployment(ctx, tb.ID, d.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("cross-tenant delete: %v", err)
			}
			if _, err := s.RotateDeploymentToken(ctx, tb.ID, d.ID, "hash-x", "p", time.Now()); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("cross-tenant rotate: %v", err)
			}
			if err := s.SetDeploymentStatus(ctx, tb.ID, d.ID, store.StatusOffline, time.Time{}); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("cross-tenant status: %v", err)
			}
			rolesB, _ := s.ListRoles(ctx, tb.ID)
			if err := s.SetMemberRole(ctx, ta.ID, ua.ID, rolesB[0].ID, perm.All); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("foreign role assigned: %v", err)
			}
			if _, err := s.GetRole(ctx, ta.ID, rolesB[0].ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("cross-tenant role: %v", err)
			}
			if _, err := s.GetMembership(ctx, tb.ID, ua.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("membership in foreign tenant: %v", err)
			}

			// Token hash lookup (tunnel) and rotation.
			got, err := s.GetDeploymentByTokenHash(ctx, "hash-1")
			if err != nil || got.ID != d.ID || got.TenantID != ta.ID || got.TokenHash != "hash-1" {
				t.Fatalf("by hash: %+v %v", got, err)
			}
			if _, err := s.RotateDeploymentToken(ctx, ta.ID, d.ID, "hash-2", "exo_dpl_ef01", time.Now()); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetDeploymentByTokenHash(ctx, "hash-1"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("old hash still valid: %v", err)
			}
			if err := s.SetDeploymentStatus(ctx, ta.ID, d.ID, store.StatusDegraded, time.Now()); err != nil {
				t.Fatal(err)
			}
			got, _ = s.GetDeployment(ctx, ta.ID, d.ID)
			if got.Status != store.StatusDegraded || got.LastHeartbeatAt == nil || got.TokenPrefix != "exo_dpl_ef01" {
				t.Fatalf("after status: %+v", got)
			}

			// Single-use OIDC state.
			if err := s.SaveOIDCState(ctx, store.OIDCState{StateHash: "st", TenantID: ta.ID, IdPID: "i", Nonce: "n", CodeVerifier: "v", ExpiresAt: time.Now().Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
			if st, err := s.ConsumeOIDCState(ctx, "st", time.Now()); err != nil || st.Nonce != "n" {
				t.Fatalf("consume: %+v %v", st, err)
			}
			if _, err := s.ConsumeOIDCState(ctx, "st", time.Now()); !errors.Is(err, store.ErrInvalidToken) {
				t.Fatalf("second consume: %v", err)
			}

			// Expired invitations are refused.
			inv, err := s.CreateInvitation(ctx, store.Invitation{TenantID: ta.ID, Email: "c@x.example", RoleID: ms[0].RoleID, InvitedBy: ua.ID, ExpiresAt: time.Now().Add(time.Hour)}, "inv-hash")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.AcceptInvitation(ctx, "inv-hash", time.Now().Add(2*time.Hour), store.User{PasswordHash: "h"}, ""); !errors.Is(err, store.ErrInvalidToken) {
				t.Fatalf("expired invitation accepted: %v", err)
			}
			if _, got, err := s.AcceptInvitation(ctx, "inv-hash", time.Now(), store.User{Name: "C", PasswordHash: "h"}, ""); err != nil || got.ID != inv.ID {
				t.Fatalf("accept: %v", err)
			}

			// Concurrent writers (SQLite WAL + busy timeout, Postgres pool) all succeed.
			errs := make(chan error, 20)
			for i := range 20 {
				go func() {
					errs <- s.AppendAudit(ctx, store.AuditEvent{TenantID: ta.ID, ActorID: ua.ID, Action: "test", TargetID: string(rune('a' + i))})
				}()
			}
			for range 20 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			ev, err := s.ListAudit(ctx, ta.ID, store.Page{Limit: 500})
			if err != nil || len(ev) != 20 {
				t.Fatalf("audit: %d %v", len(ev), err)
			}
			if evB, _ := s.ListAudit(ctx, tb.ID, store.Page{}); len(evB) != 0 {
				t.Fatalf("tenant B sees %d audit events", len(evB))
			}

			// Shell recordings expire only for ended sessions, per tenant.
			ss := store.ShellSession{ID: "sess-1", TenantID: ta.ID, UserID: ua.ID, UserEmail: ua.Email, DeploymentID: d.ID,
				Namespace: "ns", Agent: "a", Recording: ta.ID + "/sess-1.cast"}
			if err := s.CreateShellSession(ctx, ss); err != nil {
				t.Fatal(err)
			}
			if err := s.ExpireShellRecording(ctx, ta.ID, ss.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("expire a running session's recording: %v, want ErrNotFound", err)
			}
			if err := s.EndShellSession(ctx, ta.ID, ss.ID, store.ShellSessionEnd{EndedAt: time.Now(), RecordingBytes: 10}); err != nil {
				t.Fatal(err)
			}
			if err := s.ExpireShellRecording(ctx, tb.ID, ss.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("tenant B expired tenant A's recording: %v", err)
			}
			if got, err := s.GetShellSession(ctx, ta.ID, ss.ID); err != nil || !got.RecordingAvailable {
				t.Fatalf("before expiry: %+v %v", got, err)
			}
			if err := s.ExpireShellRecording(ctx, ta.ID, ss.ID); err != nil {
				t.Fatal(err)
			}
			if got, err := s.GetShellSession(ctx, ta.ID, ss.ID); err != nil || got.RecordingAvailable || got.Recording != "" || got.EndedAt == nil {
				t.Fatalf("after expiry: %+v %v", got, err)
			}
		})
	}
}

// TestAuditedChangesCommitWithTheirEvent checks, on both backends, that a
// change made under WithAudit and its audit event are one unit: both are
// written, or, when either fails, neither is.
func TestAuditedChangesCommitWithTheirEvent(t *testing.T) {
	for _, backend := range platformtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t, platformtest.DSN(t, backend))
			events := func(tenantID string) []store.AuditEvent {
				t.Helper()
				ev, err := s.ListAudit(ctx, tenantID, store.Page{Limit: 500})
				if err != nil {
					t.Fatal(err)
				}
				return ev
			}
			audit := func(action string) context.Context {
				return store.WithAudit(ctx, store.AuditEvent{Action: action, TargetType: "x", RemoteAddr: "192.0.2.1"})
			}

			// Sign-up fills in the tenant, the actor and the target it created.
			u, ten, err := s.SignUp(audit("auth.signup"), store.User{Email: "a@x.example", PasswordHash: "h"}, "A")
			if err != nil {
				t.Fatal(err)
			}
			ev := events(ten.ID)
			if len(ev) != 1 || ev[0].Action != "auth.signup" || ev[0].ActorID != u.ID || ev[0].ActorEmail != u.Email ||
				ev[0].TargetID != ten.ID || ev[0].RemoteAddr != "192.0.2.1" {
				t.Fatalf("sign-up events %+v", ev)
			}
			inTenant := func(action, targetID string) context.Context {
				return store.WithAudit(ctx, store.AuditEvent{TenantID: ten.ID, ActorID: u.ID, Action: action, TargetType: "deployment", TargetID: targetID})
			}

			// A create fills in the id of what it created.
			d, err := s.CreateDeployment(inTenant("deployment.create", ""), ten.ID, store.Deployment{Name: "d", TokenPrefix: "p"}, "hash-1")
			if err != nil {
				t.Fatal(err)
			}
			if ev := events(ten.ID); len(ev) != 2 || ev[0].Action != "deployment.create" || ev[0].TargetID != d.ID {
				t.Fatalf("after create: %+v", ev)
			}

			// Failed changes record nothing.
			if _, err := s.CreateDeployment(inTenant("deployment.create", ""), ten.ID, store.Deployment{Name: "d", TokenPrefix: "p"}, "hash-9"); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("duplicate deployment: %v, want ErrConflict", err)
			}
			if err := s.DeleteDeployment(inTenant("deployment.delete", "missing"), ten.ID, "missing"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("delete missing: %v", err)
			}
			if err := s.RemoveMember(inTenant("user.remove", "nobody"), ten.ID, "nobody", perm.All); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("remove unknown member: %v", err)
			}
			roles, _ := s.ListRoles(ctx, ten.ID)
			if err := s.DeleteRole(inTenant("role.delete", roles[0].ID), ten.ID, roles[0].ID, perm.All); !errors.Is(err, store.ErrBuiltin) {
				t.Fatalf("delete the built-in admin role: %v", err)
			}
			// Reads ignore the event.
			if _, err := s.GetDeployment(inTenant("deployment.get", d.ID), ten.ID, d.ID); err != nil {
				t.Fatal(err)
			}
			if ev := events(ten.ID); len(ev) != 2 {
				t.Fatalf("failed changes and reads recorded events: %+v", ev)
			}

			// An event that cannot be written undoes its change: here its id
			// collides with an existing event's.
			clash := store.WithAudit(ctx, store.AuditEvent{ID: events(ten.ID)[0].ID, TenantID: ten.ID, Action: "deployment.rotate_token"})
			if _, err := s.RotateDeploymentToken(clash, ten.ID, d.ID, "hash-2", "q", time.Now()); err == nil {
				t.Fatal("rotation succeeded although its audit event could not be written")
			}
			if got, err := s.GetDeploymentByTokenHash(ctx, "hash-1"); err != nil || got.ID != d.ID {
				t.Fatalf("the rotation without its audit event was kept: %+v %v", got, err)
			}

			// A password reset is recorded in every tenant of the user.
			other, err := s.CreateTenant(ctx, "B", u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.CreatePasswordReset(ctx, store.PasswordReset{UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}, "reset-hash"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ConsumePasswordReset(audit("user.password_reset"), "reset-hash", time.Now(), "h2"); err != nil {
				t.Fatal(err)
			}
			for _, tenantID := range []string{ten.ID, other.ID} {
				ev := events(tenantID)
				if len(ev) == 0 || ev[0].Action != "user.password_reset" || ev[0].ActorID != u.ID || ev[0].TargetID != u.ID {
					t.Fatalf("tenant %s: password reset events %+v", tenantID, ev)
				}
			}
		})
	}
}

func TestIsPostgresDSN(t *testing.T) {
	for dsn, want := range map[string]bool{
		"postgres://u@h/db":         true,
		"postgresql://u@h/db":       true,
		"host=db dbname=exo user=x": true,
		"exo.db":                    false,
		"/var/lib/exo/exo.db":       false,
		"file:exo.db?_pragma=x(1)":  false,
		"sqlite:///tmp/x.db":        false,
	} {
		if got := store.IsPostgresDSN(dsn); got != want {
			t.Errorf("IsPostgresDSN(%q) = %v", dsn, got)
		}
	}
}
