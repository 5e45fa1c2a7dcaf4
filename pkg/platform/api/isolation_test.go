package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/exo-in-go/exo/pkg/platform/store"
)

// TestTenantIsolation: for every endpoint, a user of tenant A gets 403 or
// 404 for tenant B's objects, with and without a forged X-Tenant-ID, and B's
// objects are unchanged afterwards.
func TestTenantIsolation(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		a := e.signup("a@tenant-a.example", "Tenant A")
		b := e.signup("b@tenant-b.example", "Tenant B")

		// Tenant B's objects.
		bDep := e.createDeployment(b, "b-prod")
		var bRole store.Role
		e.expect(e.req("POST", "/api/v1/roles", b.Token, map[string]any{"name": "b-role", "permissions": []string{"agents:read"}}), 201).json(t, &bRole)
		var bInv struct{ Invitation store.Invitation }
		e.expect(e.req("POST", "/api/v1/invitations", b.Token, map[string]string{"email": "new@tenant-b.example"}), 201).json(t, &bInv)
		waitMail(t, e.inbox)
		var bIdP store.IdentityProvider
		e.expect(e.req("POST", "/api/v1/idp", b.Token, map[string]string{"name": "b-idp", "issuer": "https://idp.tenant-b.example", "client_id": "b", "client_secret": "b-secret"}), 201).json(t, &bIdP)

		type call struct {
			method, path string
			body         any
		}
		byID := []call{
			{"GET", "/api/v1/deployments/" + bDep.Deployment.ID, nil},
			{"DELETE", "/api/v1/deployments/" + bDep.Deployment.ID, nil},
			{"POST", "/api/v1/deployments/" + bDep.Deployment.ID + "/rotate", nil},
			{"GET", "/api/v1/roles/" + bRole.ID, nil},
			{"PUT", "/api/v1/roles/" + bRole.ID, map[string]any{"name": "pwned", "permissions": []string{}}},
			{"DELETE", "/api/v1/roles/" + bRole.ID, nil},
			{"PATCH", "/api/v1/users/" + b.UserID, map[string]string{"role_id": bRole.ID}},
			{"DELETE", "/api/v1/users/" + b.UserID, nil},
			{"DELETE", "/api/v1/invitations/" + bInv.Invitation.ID, nil},
			{"GET", "/api/v1/idp/" + bIdP.ID, nil},
			{"DELETE", "/api/v1/idp/" + bIdP.ID, nil},
		}
		tenantScoped := append([]call{
			{"GET", "/api/v1/deployments", nil},
			{"POST", "/api/v1/deployments", map[string]string{"name": "sneaky"}},
			{"GET", "/api/v1/roles", nil},
			{"POST", "/api/v1/roles", map[string]any{"name": "sneaky", "permissions": []string{}}},
			{"GET", "/api/v1/users", nil},
			{"GET", "/api/v1/invitations", nil},
			{"POST", "/api/v1/invitations", map[string]string{"email": "sneaky@tenant-a.example"}},
			{"GET", "/api/v1/audit", nil},
			{"GET", "/api/v1/tenant", nil},
			{"PATCH", "/api/v1/tenant", map[string]string{"name": "pwned"}},
			{"GET", "/api/v1/idp", nil},
			{"POST", "/api/v1/idp", map[string]string{"name": "x", "issuer": "https://x.example", "client_id": "x", "client_secret": "x"}},
			{"GET", "/api/v1/permissions", nil},
			{"GET", "/api/v1/auth/me", nil},
		}, byID...)

		// 1. Forged X-Tenant-ID naming tenant B: 403 on every tenant-scoped endpoint.
		for _, c := range tenantScoped {
			r := e.req(c.method, c.path, a.Token, c.body, "X-Tenant-ID", b.TenantID)
			if r.Status != http.StatusForbidden {
				t.Errorf("%s %s with X-Tenant-ID of B: %d %s", c.method, c.path, r.Status, r.Body)
			}
		}
		// 2. Without the header, B's ids are simply not found in A's tenant.
		for _, c := range byID {
			r := e.req(c.method, c.path, a.Token, c.body)
			if r.Status != http.StatusNotFound && r.Status != http.StatusForbidden {
				t.Errorf("%s %s as A: %d %s", c.method, c.path, r.Status, r.Body)
			}
		}
		// 3. Lists in A's tenant show nothing of B.
		for _, p := range []string{"/api/v1/deployments", "/api/v1/roles", "/api/v1/users", "/api/v1/invitations", "/api/v1/audit", "/api/v1/idp", "/api/v1/tenants"} {
			body := string(e.expect(e.req("GET", p, a.Token, nil), 200).Body)
			for _, id := range []string{b.TenantID, bDep.Deployment.ID, bRole.ID, b.UserID, bInv.Invitation.ID, bIdP.ID, "b-prod", "Tenant B"} {
				if strings.Contains(body, id) {
					t.Errorf("%s as A leaks %q: %s", p, id, body)
				}
			}
		}
		// 4. A's own role id cannot be given to B's member, nor B's role to A's member.
		var aRoles struct{ Items []store.Role }
		e.expect(e.req("GET", "/api/v1/roles", a.Token, nil), 200).json(t, &aRoles)
		e.expect(e.req("PATCH", "/api/v1/users/"+b.UserID, a.Token, map[string]string{"role_id": aRoles.Items[1].ID}), 404)
		e.expect(e.req("POST", "/api/v1/invitations", a.Token, map[string]string{"email": "x@tenant-a.example", "role_id": bRole.ID}), 404)
		// 5. OIDC login of B's provider through A's tenant id is not found.
		e.expect(e.req("GET", "/api/v1/auth/oidc/"+a.TenantID+"/"+bIdP.ID+"/login", "", nil), 404)

		// B's objects are untouched.
		var dep store.Deployment
		e.expect(e.req("GET", "/api/v1/deployments/"+bDep.Deployment.ID, b.Token, nil), 200).json(t, &dep)
		if dep.TokenPrefix != bDep.Deployment.TokenPrefix {
			t.Fatal("B's deployment token was rotated by A")
		}
		e.expect(e.req("GET", "/api/agentkube/whoami", bDep.Token, nil), 200)
		var role store.Role
		e.expect(e.req("GET", "/api/v1/roles/"+bRole.ID, b.Token, nil), 200).json(t, &role)
		if role.Name != "b-role" {
			t.Fatalf("B's role changed: %+v", role)
		}
		var ten store.Tenant
		e.expect(e.req("GET", "/api/v1/tenant", b.Token, nil), 200).json(t, &ten)
		if ten.Name != "Tenant B" {
			t.Fatalf("B's tenant renamed: %+v", ten)
		}
		var invs struct{ Items []store.Invitation }
		e.expect(e.req("GET", "/api/v1/invitations", b.Token, nil), 200).json(t, &invs)
		e.expect(e.req("GET", "/api/v1/idp/"+bIdP.ID, b.Token, nil), 200)
		if len(invs.Items) != 1 {
			t.Fatalf("B's invitation gone: %+v", invs)
		}
	})
}
