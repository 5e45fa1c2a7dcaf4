package security_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/exo-in-go/exo/pkg/platform/platformtest"
)

// Item 1 (critical): a tenant admin registers an identity provider they
// control and has it assert a victim's e-mail, verified. Before the fix the
// victim's account was returned, and X-Tenant-ID opened every tenant of the
// victim.
func TestItem01_ForeignIdPCannotTakeOverAccount(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		idp := startIdP(t)
		a := startApp(t, backend, idp.idpEnv()...)
		victim := a.signup("victim@corp.example", "Victim Co")
		attacker := a.signup("mallory@evil.example", "Evil Co")
		_, loginURL := a.registerIdP(attacker, idp, nil)

		idp.next(map[string]any{"sub": "mallory-1", "email": "victim@corp.example", "email_verified": true})
		got := newBrowser(t, idp).ssoSignIn(a, loginURL)
		if got.UserID == victim.UserID {
			t.Fatal("the provider's assertion of the victim's e-mail signed in the victim's account")
		}
		// The new account exists in the attacker's tenant only, and its
		// token opens nothing else.
		if r := a.call("GET", "/api/v1/tenant", got.Token, nil, "X-Tenant-ID", victim.TenantID); r.Status != http.StatusForbidden {
			t.Fatalf("X-Tenant-ID of the victim's tenant: %d %s", r.Status, r.Body)
		}
		var tenants struct {
			Items []struct {
				TenantID string `json:"tenant_id"`
			}
		}
		a.expect(a.call("GET", "/api/v1/tenants", got.Token, nil), http.StatusOK).JSON(t, &tenants)
		if len(tenants.Items) != 1 || tenants.Items[0].TenantID != attacker.TenantID {
			t.Fatalf("tenants of the SSO account: %+v", tenants.Items)
		}
		// The victim is untouched: same password, one tenant, and the
		// address still belongs to their password account (a reset reaches them).
		v := a.login("victim@corp.example")
		if v.UserID != victim.UserID {
			t.Fatalf("victim signs in as %s, want %s", v.UserID, victim.UserID)
		}
		var members struct{ Items []struct{ ID string } }
		a.expect(a.call("GET", "/api/v1/users", victim.Token, nil), http.StatusOK).JSON(t, &members)
		if len(members.Items) != 1 {
			t.Fatalf("victim's tenant has %d members", len(members.Items))
		}

		// Even the attacker's own (legitimately linked) identity cannot
		// carry its token into another tenant of the same account.
		a.expect(a.call("POST", "/api/v1/tenants", attacker.Token, map[string]string{"name": "Evil Two"}), http.StatusCreated)
		b := newBrowser(t, idp)
		var link struct{ URL string }
		r := platformtest.Call(t, b.client, "POST", a.url+"/api/v1/idp/"+idpIDFromLogin(loginURL)+"/link", attacker.Token, map[string]string{})
		a.expect(r, http.StatusOK).JSON(t, &link)
		idp.next(map[string]any{"sub": "mallory-2", "email": "mallory@evil.example", "email_verified": true})
		if _, frag := b.startSSO(link.URL); frag.Get("linked") == "" {
			t.Fatalf("linking through a signed-in browser failed: %v", frag)
		}
		idp.next(map[string]any{"sub": "mallory-2", "email": "mallory@evil.example", "email_verified": true})
		linked := newBrowser(t, idp).ssoSignIn(a, loginURL)
		if linked.UserID != attacker.UserID {
			t.Fatalf("linked identity signs in %s, want the account that linked it (%s)", linked.UserID, attacker.UserID)
		}
		var all struct {
			Items []struct {
				TenantID string `json:"tenant_id"`
			}
		}
		a.expect(a.call("GET", "/api/v1/tenants", attacker.Token, nil), http.StatusOK).JSON(t, &all)
		for _, ten := range all.Items {
			if ten.TenantID != attacker.TenantID {
				if r := a.call("GET", "/api/v1/tenant", linked.Token, nil, "X-Tenant-ID", ten.TenantID); r.Status != http.StatusForbidden {
					t.Fatalf("IdP token opened another tenant of the account: %d", r.Status)
				}
			}
		}

		// A link started by one browser cannot be finished in another: the
		// attacker cannot make a victim's browser link the attacker's identity.
		r = platformtest.Call(t, newBrowser(t, idp).client, "GET", link.URL, "", nil)
		if r.Status != http.StatusBadRequest {
			t.Fatalf("link ticket in another browser: %d %s", r.Status, r.Body)
		}

		// email_verified must be asserted: absent is unverified.
		idp.next(map[string]any{"sub": "mallory-3", "email": "someone@corp.example"})
		if res, frag := newBrowser(t, idp).startSSO(loginURL); frag != nil || res.StatusCode != http.StatusForbidden {
			t.Fatalf("sign-in without email_verified: %d %v", res.StatusCode, frag)
		}
		idp.next(map[string]any{"sub": "mallory-3", "email": "someone@corp.example", "email_verified": false})
		if res, frag := newBrowser(t, idp).startSSO(loginURL); frag != nil || res.StatusCode != http.StatusForbidden {
			t.Fatalf("sign-in with email_verified false: %d %v", res.StatusCode, frag)
		}
	})
}

func idpIDFromLogin(loginURL string) string {
	parts := strings.Split(strings.TrimSuffix(loginURL, "/login"), "/")
	return parts[len(parts)-1]
}

// Item 11: SSO provisioned anyone the provider authenticated as member
// (which can open shells). Now a provider's members get no permission
// until an administrator assigns a role, unless the administrator chose a
// default role they hold themselves; an allowed-domains list bounds who
// the provider may sign in at all.
func TestItem11_SSOProvisionsNoPermissionsByDefault(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		idp := startIdP(t)
		a := startApp(t, backend, idp.idpEnv()...)
		admin := a.signup("admin@corp.example", "Corp")
		_, loginURL := a.registerIdP(admin, idp, nil)
		idp.next(map[string]any{"sub": "u-1", "email": "new@corp.example", "email_verified": true})
		u := newBrowser(t, idp).ssoSignIn(a, loginURL)
		var me struct {
			Role        string   `json:"role"`
			Permissions []string `json:"permissions"`
		}
		a.expect(a.call("GET", "/api/v1/auth/me", u.Token, nil), http.StatusOK).JSON(t, &me)
		if me.Role != "no-access" || len(me.Permissions) != 0 {
			t.Fatalf("SSO member: role %q permissions %v, want no-access and none", me.Role, me.Permissions)
		}
		for _, path := range []string{"/api/v1/deployments", "/api/v1/users", "/api/v1/roles"} {
			a.expect(a.call("GET", path, u.Token, nil), http.StatusForbidden)
		}

		// Allowed domains: another domain is refused, even verified.
		_, corpOnly := a.registerIdP(admin, idp, map[string]any{"allowed_domains": []string{"corp.example"}})
		idp.next(map[string]any{"sub": "u-2", "email": "someone@gmail.example", "email_verified": true})
		if res, frag := newBrowser(t, idp).startSSO(corpOnly); frag != nil || res.StatusCode != http.StatusForbidden {
			t.Fatalf("sign-in from a domain outside allowed_domains: %d %v", res.StatusCode, frag)
		}
		idp.next(map[string]any{"sub": "u-3", "email": "ok@corp.example", "email_verified": true})
		newBrowser(t, idp).ssoSignIn(a, corpOnly)

		// A helper who may configure providers cannot make a role stronger
		// than their own the default (that would grant it to anyone).
		a.expect(a.call("POST", "/api/v1/roles", admin.Token, map[string]any{"name": "sso-admin", "permissions": []string{"idp:read", "idp:write"}}), http.StatusCreated)
		helper := a.join(admin, "helper@corp.example", a.role(admin, "sso-admin"))
		r := a.call("POST", "/api/v1/idp", helper.Token, map[string]any{
			"name": "sneaky", "issuer": idp.issuer(), "client_id": idpClientID, "client_secret": idpClientSecret, "default_role_id": a.role(admin, "admin"),
		})
		if r.Status != http.StatusForbidden {
			t.Fatalf("default role stronger than the caller: %d %s", r.Status, r.Body)
		}
		// The administrator may choose member for everyone the provider signs in.
		_, asMember := a.registerIdP(admin, idp, map[string]any{"default_role_id": a.role(admin, "member")})
		idp.next(map[string]any{"sub": "u-4", "email": "m@corp.example", "email_verified": true})
		m := newBrowser(t, idp).ssoSignIn(a, asMember)
		a.expect(a.call("GET", "/api/v1/deployments", m.Token, nil), http.StatusOK)
	})
}

// Item 17: /auth/complete#token= signed a browser in with any token, so an
// attacker could sign a victim's browser into the attacker's account (whose
// activity the attacker then reads). The completion is now a one-time code
// that only the browser that started the sign-in can exchange.
func TestItem17_SignInCompletesOnlyInTheBrowserThatStartedIt(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		idp := startIdP(t)
		a := startApp(t, backend, idp.idpEnv()...)
		admin := a.signup("admin@corp.example", "Corp")
		_, loginURL := a.registerIdP(admin, idp, nil)

		idp.next(map[string]any{"sub": "attacker", "email": "attacker@corp.example", "email_verified": true})
		attackerBrowser := newBrowser(t, idp)
		res, frag := attackerBrowser.startSSO(loginURL)
		if frag == nil || frag.Get("code") == "" {
			t.Fatalf("attacker's own sign-in: %d", res.StatusCode)
		}
		if frag.Get("token") != "" {
			t.Fatal("completion URL carries a token")
		}
		// The victim's browser opens the attacker's completion link: it has
		// no cookie of that flow, or one of a flow of its own.
		victimBrowser := newBrowser(t, idp)
		if r := victimBrowser.complete(a, frag.Get("code")); r.Status != http.StatusBadRequest {
			t.Fatalf("code exchanged in another browser: %d %s", r.Status, r.Body)
		}
		idp.next(map[string]any{"sub": "victim", "email": "victim@corp.example", "email_verified": true})
		victimBrowser.startSSO(loginURL)
		if r := victimBrowser.complete(a, frag.Get("code")); r.Status != http.StatusBadRequest {
			t.Fatalf("code exchanged in a browser with another flow's cookie: %d %s", r.Status, r.Body)
		}
		// A forged code (signed with another key, or a user token) is refused too.
		if r := attackerBrowser.complete(a, admin.Token); r.Status != http.StatusBadRequest {
			t.Fatalf("a user token as completion code: %d", r.Status)
		}
		// The browser that started it completes normally.
		a.expect(attackerBrowser.complete(a, frag.Get("code")), http.StatusOK)
	})
}
