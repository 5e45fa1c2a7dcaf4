package security_test

import (
	"bytes"
	"net/http"
	"testing"
)

// Item 3: a role with users:write could make anyone (itself included) admin
// and remove the admins. Now nobody grants, edits or removes what they do
// not hold, and the tenant's last member holding every permission stays.
func TestItem03_UsersWriteCannotEscalate(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		a := startApp(t, backend)
		admin := a.signup("admin@corp.example", "Corp")
		a.expect(a.call("POST", "/api/v1/roles", admin.Token, map[string]any{"name": "helpdesk", "permissions": []string{"users:read", "users:write"}}), http.StatusCreated)
		helpdesk := a.join(admin, "helpdesk@corp.example", a.role(admin, "helpdesk"))
		member := a.join(admin, "member@corp.example", a.role(admin, "member"))
		adminRole := a.role(admin, "admin")

		for name, r := range map[string]resp{
			"make itself admin":           a.call("PATCH", "/api/v1/users/"+helpdesk.UserID, helpdesk.Token, map[string]string{"role_id": adminRole}),
			"make another member admin":   a.call("PATCH", "/api/v1/users/"+member.UserID, helpdesk.Token, map[string]string{"role_id": adminRole}),
			"demote the admin":            a.call("PATCH", "/api/v1/users/"+admin.UserID, helpdesk.Token, map[string]string{"role_id": a.role(admin, "member")}),
			"remove the admin":            a.call("DELETE", "/api/v1/users/"+admin.UserID, helpdesk.Token, nil),
			"give a member a role it has": a.call("PATCH", "/api/v1/users/"+member.UserID, helpdesk.Token, map[string]string{"role_id": a.role(admin, "helpdesk")}),
		} {
			if r.Status < 400 || r.Status == http.StatusNotFound {
				t.Errorf("%s: %d %s, want refused", name, r.Status, r.Body)
			}
		}
		// Still admin, still one of them.
		var me struct{ Role string }
		a.expect(a.call("GET", "/api/v1/auth/me", admin.Token, nil), http.StatusOK).JSON(t, &me)
		if me.Role != "admin" {
			t.Fatalf("admin is now %q", me.Role)
		}
		// What helpdesk may do: move a member (whose role it fully holds…)
		// not into roles beyond its own. Member holds permissions helpdesk
		// lacks, so even that is refused; a no-access member it may manage.
		a.expect(a.call("POST", "/api/v1/roles", admin.Token, map[string]any{"name": "readers", "permissions": []string{"users:read"}}), http.StatusCreated)
		reader := a.join(admin, "new@corp.example", a.role(admin, "readers"))
		a.expect(a.call("DELETE", "/api/v1/users/"+reader.UserID, helpdesk.Token, nil), http.StatusNoContent)

		// The last member with every permission: a second full member takes
		// over, demotes the first, then cannot strip its own role bare.
		a.expect(a.call("POST", "/api/v1/roles", admin.Token, map[string]any{"name": "root", "permissions": allPermissions(t, a, admin)}), http.StatusCreated)
		root := a.join(admin, "root@corp.example", a.role(admin, "root"))
		a.expect(a.call("PATCH", "/api/v1/users/"+admin.UserID, root.Token, map[string]string{"role_id": a.role(admin, "member")}), http.StatusOK)
		r := a.call("PUT", "/api/v1/roles/"+a.role(root, "root"), root.Token, map[string]any{"name": "root", "permissions": []string{"users:read"}})
		if r.Status != http.StatusConflict || r.Code() != "last_admin" {
			t.Fatalf("stripping the last full role: %d %s", r.Status, r.Body)
		}
		// And the demoted admin cannot come back by itself.
		a.expect(a.call("PATCH", "/api/v1/users/"+admin.UserID, admin.Token, map[string]string{"role_id": adminRole}), http.StatusForbidden)
	})
}

func allPermissions(t *testing.T, a *app, s session) []string {
	var perms struct{ Items []string }
	a.expect(a.call("GET", "/api/v1/permissions", s.Token, nil), http.StatusOK).JSON(t, &perms)
	return perms.Items
}

// Items 5 and 20: a roles:write holder could rewrite or delete the built-in
// admin and member roles (locking the tenant out, breaking invitations and
// SSO). Built-in roles are protected, and role edits follow the same rule
// as grants: not beyond what the editor holds.
func TestItem05_BuiltinRolesAreProtected(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		a := startApp(t, backend)
		admin := a.signup("admin@corp.example", "Corp")
		a.expect(a.call("POST", "/api/v1/roles", admin.Token, map[string]any{"name": "role-manager", "permissions": []string{"roles:read", "roles:write", "users:read"}}), http.StatusCreated)
		a.expect(a.call("POST", "/api/v1/roles", admin.Token, map[string]any{"name": "deployers", "permissions": []string{"deployments:read", "deployments:write"}}), http.StatusCreated)
		rm := a.join(admin, "rm@corp.example", a.role(admin, "role-manager"))

		for _, name := range []string{"admin", "member", "no-access"} {
			id := a.role(admin, name)
			if r := a.call("PUT", "/api/v1/roles/"+id, rm.Token, map[string]any{"name": name, "permissions": []string{}}); r.Status != http.StatusForbidden {
				t.Errorf("rewrite built-in %s: %d %s", name, r.Status, r.Body)
			}
			if r := a.call("DELETE", "/api/v1/roles/"+id, rm.Token, nil); r.Status != http.StatusForbidden {
				t.Errorf("delete built-in %s: %d %s", name, r.Status, r.Body)
			}
			// Not even the administrator changes them.
			if r := a.call("DELETE", "/api/v1/roles/"+id, admin.Token, nil); r.Status != http.StatusForbidden || r.Code() != "builtin_role" {
				t.Errorf("admin deletes built-in %s: %d %s", name, r.Status, r.Body)
			}
		}
		// A role holding what the editor lacks: neither narrowed nor deleted.
		deployers := a.role(admin, "deployers")
		a.expect(a.call("PUT", "/api/v1/roles/"+deployers, rm.Token, map[string]any{"name": "deployers", "permissions": []string{}}), http.StatusForbidden)
		a.expect(a.call("DELETE", "/api/v1/roles/"+deployers, rm.Token, nil), http.StatusForbidden)
		// Nor grants itself more through its own role.
		a.expect(a.call("PUT", "/api/v1/roles/"+a.role(admin, "role-manager"), rm.Token, map[string]any{"name": "role-manager", "permissions": []string{"roles:read", "roles:write", "users:read", "users:write"}}), http.StatusForbidden)

		// Item 20: with the member role intact, default invitations still work.
		a.expect(a.call("POST", "/api/v1/invitations", admin.Token, map[string]string{"email": "later@corp.example"}), http.StatusCreated)
		a.mail.token(t, "later@corp.example", "/invite/accept")
	})
}

// Item 7: an invitation link signed an existing account in without its
// password, into all its tenants. Now the link alone only works for a new
// account; an existing one must be signed in (as itself) to accept.
func TestItem07_InvitationLinkDoesNotOpenAnExistingAccount(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		a := startApp(t, backend)
		victim := a.signup("victim@corp.example", "Victim Co")
		other := a.signup("owner@other.example", "Other Co")
		mallory := a.signup("mallory@evil.example", "Evil Co")
		tok := a.invite(other, "victim@corp.example", a.role(other, "member"))

		// Whoever holds the link (forwarded, leaked, logged) gets nothing.
		for name, token := range map[string]string{"no sign-in": "", "someone else's sign-in": mallory.Token} {
			r := a.call("POST", "/api/v1/auth/invitations/accept", token, map[string]string{"token": tok, "password": "attacker chosen pw"})
			if r.Status != http.StatusUnauthorized || r.Code() != "sign_in_required" {
				t.Fatalf("%s: %d %s", name, r.Status, r.Body)
			}
			if bytes.Contains(r.Body, []byte(`"token":"ey`)) {
				t.Fatalf("%s: a token was issued", name)
			}
		}
		var members struct{ Items []struct{ ID string } }
		a.expect(a.call("GET", "/api/v1/users", other.Token, nil), http.StatusOK).JSON(t, &members)
		if len(members.Items) != 1 {
			t.Fatalf("refused acceptances added members: %+v", members.Items)
		}
		// The victim signed in accepts; the link is then spent.
		var joined session
		a.expect(a.call("POST", "/api/v1/auth/invitations/accept", victim.Token, map[string]string{"token": tok}), http.StatusOK).JSON(t, &joined)
		if joined.TenantID != other.TenantID {
			t.Fatalf("joined %s, want %s", joined.TenantID, other.TenantID)
		}
		a.expect(a.call("POST", "/api/v1/auth/invitations/accept", victim.Token, map[string]string{"token": tok}), http.StatusBadRequest)
	})
}

// Item 13: tokens could not be revoked (logout did nothing; a reset left
// old tokens valid for 24 h). Logout, a new password, a reset and removal
// from a tenant now revoke every token issued before.
func TestItem13_TokensAreRevocable(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		a := startApp(t, backend)
		u := a.signup("user@corp.example", "Corp")
		stolen := a.login("user@corp.example")

		// Logout ends every session, the stolen one included.
		a.expect(a.call("POST", "/api/v1/auth/logout", u.Token, nil), http.StatusNoContent)
		for _, tok := range []string{u.Token, stolen.Token} {
			if r := a.call("GET", "/api/v1/auth/me", tok, nil); r.Status != http.StatusUnauthorized {
				t.Fatalf("token after logout: %d", r.Status)
			}
		}

		// A password reset ends them too.
		stolen = a.login("user@corp.example")
		a.expect(a.call("POST", "/api/v1/auth/password-reset", "", map[string]string{"email": "user@corp.example"}), http.StatusAccepted)
		reset := a.mail.token(t, "user@corp.example", "/reset-password")
		a.expect(a.call("POST", "/api/v1/auth/password-reset/confirm", "", map[string]string{"token": reset, "password": "a whole new password"}), http.StatusNoContent)
		a.expect(a.call("GET", "/api/v1/auth/me", stolen.Token, nil), http.StatusUnauthorized)

		// So does a password change, which hands the caller a fresh token.
		var s session
		a.expect(a.call("POST", "/api/v1/auth/login", "", map[string]string{"email": "user@corp.example", "password": "a whole new password"}), http.StatusOK).JSON(t, &s)
		stolen = s
		var fresh session
		a.expect(a.call("POST", "/api/v1/auth/password", s.Token, map[string]string{"current_password": "a whole new password", "new_password": password}), http.StatusOK).JSON(t, &fresh)
		a.expect(a.call("GET", "/api/v1/auth/me", stolen.Token, nil), http.StatusUnauthorized)
		a.expect(a.call("GET", "/api/v1/auth/me", fresh.Token, nil), http.StatusOK)
		a.expect(a.call("POST", "/api/v1/auth/password", fresh.Token, map[string]string{"current_password": "wrong", "new_password": "whatever it is"}), http.StatusForbidden)

		// Removal from one tenant revokes the tokens of every tenant.
		other := a.signup("owner@other.example", "Other")
		joined := a.invite(other, "user@corp.example", a.role(other, "member"))
		a.expect(a.call("POST", "/api/v1/auth/invitations/accept", fresh.Token, map[string]string{"token": joined}), http.StatusOK)
		me := a.login("user@corp.example")
		a.expect(a.call("DELETE", "/api/v1/users/"+me.UserID, other.Token, nil), http.StatusNoContent)
		a.expect(a.call("GET", "/api/v1/auth/me", me.Token, nil), http.StatusUnauthorized)
		a.login("user@corp.example") // signing in again works
	})
}
