package api_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/exo-in-go/exo/pkg/platform/auth"
	"github.com/exo-in-go/exo/pkg/platform/perm"
	"github.com/exo-in-go/exo/pkg/platform/store"
)

func TestHealthAndUI(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		var h map[string]string
		e.expect(e.req("GET", "/api/health", "", nil), 200).json(t, &h)
		if h["status"] != "ok" || h["database"] != backend {
			t.Fatalf("health = %v", h)
		}
		r := e.expect(e.req("GET", "/", "", nil), 200)
		if !strings.Contains(string(r.Body), "<h1>Exo</h1>") {
			t.Fatalf("UI placeholder not served: %s", r.Body)
		}
		e.expect(e.req("GET", "/some/client/route", "", nil), 200)
		if code := e.expect(e.req("GET", "/api/v1/nope", "", nil), 404).errCode(t); code != "not_found" {
			t.Fatal(code)
		}
	})
}

func TestSignupLoginMe(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		s := e.signup("Alice@Example.com", "Acme")
		if s.Email != "alice@example.com" {
			t.Fatalf("email not normalised: %q", s.Email)
		}
		// Duplicate (case-insensitive) e-mail: the same answer as a new one
		// (no enumeration); the mailbox's owner learns it by mail.
		e.expect(e.req("POST", "/api/v1/auth/signup", "", map[string]string{"email": "ALICE@example.com", "password": "long enough pw"}), 202)
		if m := waitMail(t, e.inbox); !strings.Contains(m.Data, "already has an account") {
			t.Fatalf("mail for a taken address:\n%s", m.Data)
		}
		e.expect(e.req("POST", "/api/v1/auth/signup", "", map[string]string{"email": "bob@example.com", "password": "short"}), 400)

		var tok struct {
			Token     string    `json:"token"`
			ExpiresAt time.Time `json:"expires_at"`
		}
		e.expect(e.req("POST", "/api/v1/auth/login", "", map[string]string{"email": "alice@example.com", "password": "correct horse battery"}), 200).json(t, &tok)
		if tok.Token == "" || time.Until(tok.ExpiresAt) < 23*time.Hour {
			t.Fatalf("login response %+v", tok)
		}
		claims, err := auth.NewIssuer(e.cfg.JWTSecret, time.Hour).Parse(tok.Token)
		if err != nil || claims.TenantID != s.TenantID || !perm.Has(claims.Permissions, perm.DeploymentsWrite) {
			t.Fatalf("claims %+v, %v", claims, err)
		}
		if code := e.expect(e.req("POST", "/api/v1/auth/login", "", map[string]string{"email": "alice@example.com", "password": "wrong password"}), 401).errCode(t); code != "invalid_credentials" {
			t.Fatal(code)
		}
		e.expect(e.req("POST", "/api/v1/auth/login", "", map[string]string{"email": "nobody@example.com", "password": "wrong password"}), 401)
		// The wrong password for an existing member is in their tenant's audit log,
		// without the password.
		var audit struct {
			Items []store.AuditEvent `json:"items"`
		}
		e.expect(e.req("GET", "/api/v1/audit", s.Token, nil), 200).json(t, &audit)
		failed := 0
		for _, a := range audit.Items {
			if a.Action == "auth.login_failed" {
				failed++
				if a.ActorEmail != "alice@example.com" || strings.Contains(a.Detail, "wrong password") {
					t.Fatalf("failed-login audit %+v", a)
				}
			}
		}
		if failed != 1 {
			t.Fatalf("%d auth.login_failed events, want 1", failed)
		}

		var me struct {
			TenantID    string             `json:"tenant_id"`
			Role        string             `json:"role"`
			Permissions []string           `json:"permissions"`
			Tenants     []store.Membership `json:"tenants"`
		}
		e.expect(e.req("GET", "/api/v1/auth/me", tok.Token, nil), 200).json(t, &me)
		if me.TenantID != s.TenantID || me.Role != perm.RoleAdmin || len(me.Tenants) != 1 || me.Tenants[0].TenantName != "Acme" {
			t.Fatalf("me = %+v", me)
		}
		e.expect(e.req("GET", "/api/v1/auth/me", "", nil), 401)
		e.expect(e.req("GET", "/api/v1/auth/me", "garbage", nil), 401)
		// A token signed with another secret is refused.
		forged, _, _ := auth.NewIssuer([]byte("other-secret"), time.Hour).Issue(auth.Subject{UserID: s.UserID, Email: s.Email, TenantID: s.TenantID, Permissions: perm.All})
		e.expect(e.req("GET", "/api/v1/auth/me", forged, nil), 401)

		// Second tenant selected with X-Tenant-ID, and at login.
		var t2 store.Tenant
		e.expect(e.req("POST", "/api/v1/tenants", s.Token, map[string]string{"name": "Second"}), 201).json(t, &t2)
		var cur store.Tenant
		e.expect(e.req("GET", "/api/v1/tenant", s.Token, nil, "X-Tenant-ID", t2.ID), 200).json(t, &cur)
		if cur.ID != t2.ID {
			t.Fatalf("X-Tenant-ID did not select tenant: %+v", cur)
		}
		e.expect(e.req("POST", "/api/v1/auth/login", "", map[string]string{"email": "alice@example.com", "password": "correct horse battery", "tenant_id": t2.ID}), 200).json(t, &tok)
		e.expect(e.req("GET", "/api/v1/tenant", tok.Token, nil), 200).json(t, &cur)
		if cur.ID != t2.ID {
			t.Fatalf("login tenant_id ignored: %+v", cur)
		}
	})
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, "sqlite", withEnv("EXO_LOGIN_RATE_PER_MINUTE", "3"))
	e.signup("rl@example.com", "RL")
	var last resp
	for range 5 {
		last = e.req("POST", "/api/v1/auth/login", "", map[string]string{"email": "rl@example.com", "password": "wrong password"})
	}
	if last.Status != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("after 5 attempts: %d %s (Retry-After %q)", last.Status, last.Body, last.Header.Get("Retry-After"))
	}
	// The correct password is refused as well while limited.
	e.expect(e.req("POST", "/api/v1/auth/login", "", map[string]string{"email": "rl@example.com", "password": "correct horse battery"}), 429)
}

func TestDeploymentsAndTokens(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		s := e.signup("ops@example.com", "Ops")
		d := e.createDeployment(s, "prod-eu-west-1")
		if !regexp.MustCompile(`^exo_dpl_[0-9a-f]{32}$`).MatchString(d.Token) {
			t.Fatalf("token format %q", d.Token)
		}
		if d.Deployment.Status != store.StatusPending || d.Deployment.TokenPrefix != d.Token[:12] || d.Deployment.TokenIssuedAt.IsZero() {
			t.Fatalf("deployment %+v", d.Deployment)
		}
		e.expect(e.req("POST", "/api/v1/deployments", s.Token, map[string]string{"name": "prod-eu-west-1"}), 409)

		// The token is shown once: get and list never carry it.
		g := e.expect(e.req("GET", "/api/v1/deployments/"+d.Deployment.ID, s.Token, nil), 200)
		l := e.expect(e.req("GET", "/api/v1/deployments", s.Token, nil), 200)
		for _, body := range [][]byte{g.Body, l.Body} {
			if strings.Contains(string(body), d.Token) || strings.Contains(string(body), auth.HashToken(d.Token)) {
				t.Fatalf("token or hash leaked: %s", body)
			}
		}
		var list struct{ Items []store.Deployment }
		l.json(t, &list)
		if len(list.Items) != 1 || list.Items[0].ID != d.Deployment.ID {
			t.Fatalf("list %+v", list)
		}

		// The token works.
		var who map[string]string
		e.expect(e.req("GET", "/api/agentkube/whoami", d.Token, nil), 200).json(t, &who)
		if who["deployment_id"] != d.Deployment.ID || who["tenant_id"] != s.TenantID {
			t.Fatalf("whoami %v", who)
		}
		got, err := e.api.AuthenticateDeployment(context.Background(), d.Token)
		if err != nil || got.ID != d.Deployment.ID {
			t.Fatalf("AuthenticateDeployment: %+v %v", got, err)
		}

		// Rotate: new token works, old one is refused.
		var rot deploymentResp
		e.expect(e.req("POST", "/api/v1/deployments/"+d.Deployment.ID+"/rotate", s.Token, nil), 200).json(t, &rot)
		if rot.Token == d.Token || rot.Deployment.TokenPrefix != rot.Token[:12] {
			t.Fatalf("rotate %+v", rot)
		}
		e.expect(e.req("GET", "/api/agentkube/whoami", d.Token, nil), 401)
		e.expect(e.req("GET", "/api/agentkube/whoami", rot.Token, nil), 200)
		e.expect(e.req("GET", "/api/agentkube/whoami", "exo_dpl_00000000000000000000000000000000", nil), 401)

		// Tunnel hooks: status and heartbeat.
		hb := time.Now()
		if err := e.store.SetDeploymentStatus(context.Background(), s.TenantID, d.Deployment.ID, store.StatusConnected, hb); err != nil {
			t.Fatal(err)
		}
		var after store.Deployment
		e.expect(e.req("GET", "/api/v1/deployments/"+d.Deployment.ID, s.Token, nil), 200).json(t, &after)
		if after.Status != store.StatusConnected || after.LastHeartbeatAt == nil || after.LastHeartbeatAt.Sub(hb).Abs() > time.Millisecond {
			t.Fatalf("status not recorded: %+v", after)
		}
		if err := e.store.SetDeploymentStatus(context.Background(), s.TenantID, d.Deployment.ID, "bogus", time.Time{}); err == nil {
			t.Fatal("invalid status accepted")
		}

		// The database holds no raw token anywhere.
		second := e.createDeployment(s, "second")
		assertNoRawToken(t, backend, e.cfg.DatabaseDSN, []string{d.Token, rot.Token, second.Token})

		e.expect(e.req("DELETE", "/api/v1/deployments/"+d.Deployment.ID, s.Token, nil), 204)
		e.expect(e.req("GET", "/api/v1/deployments/"+d.Deployment.ID, s.Token, nil), 404)
		e.expect(e.req("GET", "/api/agentkube/whoami", rot.Token, nil), 401)
	})
}

// assertNoRawToken scans every text column of every table for the tokens.
func assertNoRawToken(t *testing.T, backend, dsn string, tokens []string) {
	t.Helper()
	driver, list := "sqlite", `SELECT name FROM sqlite_master WHERE type = 'table'`
	if backend == "postgres" {
		driver, list = "pgx", `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	} else {
		dsn = "file:" + dsn
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(list)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) < 5 {
		t.Fatalf("found only tables %v", tables)
	}
	scanned := 0
	for _, table := range tables {
		rs, err := db.Query(`SELECT * FROM ` + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rs.Columns()
		for rs.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rs.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				s := fmt.Sprint(v)
				if b, ok := v.([]byte); ok {
					s = string(b)
				}
				scanned++
				for _, tok := range tokens {
					if strings.Contains(s, tok) || strings.Contains(s, tok[len(auth.DeploymentTokenPrefix):]) {
						t.Fatalf("raw token found in %s.%s", table, cols[i])
					}
				}
			}
		}
		rs.Close()
	}
	if scanned == 0 {
		t.Fatal("scanned nothing")
	}
}

func TestRolesUsersAndAudit(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		admin := e.signup("admin@example.com", "RolesCo")
		var roles struct{ Items []store.Role }
		e.expect(e.req("GET", "/api/v1/roles", admin.Token, nil), 200).json(t, &roles)
		if len(roles.Items) != 3 || roles.Items[0].Name != "admin" || roles.Items[1].Name != "member" || roles.Items[2].Name != "no-access" || !roles.Items[0].Builtin {
			t.Fatalf("seeded roles %+v", roles.Items)
		}
		var perms struct{ Items []string }
		e.expect(e.req("GET", "/api/v1/permissions", admin.Token, nil), 200).json(t, &perms)
		if len(perms.Items) != len(perm.All) {
			t.Fatalf("permissions %v", perms.Items)
		}

		var custom store.Role
		e.expect(e.req("POST", "/api/v1/roles", admin.Token, map[string]any{"name": "deployer", "permissions": []string{"deployments:write", "deployments:read", "deployments:read"}}), 201).json(t, &custom)
		if strings.Join(custom.Permissions, ",") != "deployments:read,deployments:write" || custom.Builtin {
			t.Fatalf("custom role %+v", custom)
		}
		if code := e.expect(e.req("POST", "/api/v1/roles", admin.Token, map[string]any{"name": "x", "permissions": []string{"deployments:fly"}}), 400).errCode(t); code != "unknown_permission" {
			t.Fatal(code)
		}
		e.expect(e.req("POST", "/api/v1/roles", admin.Token, map[string]any{"name": "deployer", "permissions": []string{}}), 409)

		// Bring in a second user through an invitation into the custom role.
		inviteAndAccept := func(email, roleID string) session {
			e.expect(e.req("POST", "/api/v1/invitations", admin.Token, map[string]string{"email": email, "role_id": roleID}), 201)
			link := linkFrom(t, waitMail(t, e.inbox).Data)
			var s session
			e.expect(e.req("POST", "/api/v1/auth/invitations/accept", "", map[string]string{"token": tokenFrom(t, link), "password": "member password"}), 200).json(t, &s)
			return s
		}
		dep := inviteAndAccept("deployer@example.com", custom.ID)
		var me struct {
			User struct{ ID string } `json:"user"`
		}
		e.expect(e.req("GET", "/api/v1/auth/me", dep.Token, nil), 200).json(t, &me)
		e.createDeployment(dep, "by-deployer")
		e.expect(e.req("GET", "/api/v1/roles", dep.Token, nil), 403)
		e.expect(e.req("DELETE", "/api/v1/roles/"+custom.ID, admin.Token, nil), 409) // in use

		// Narrow the role: the change applies to the existing token at once.
		e.expect(e.req("PUT", "/api/v1/roles/"+custom.ID, admin.Token, map[string]any{"name": "deployer", "permissions": []string{"deployments:read"}}), 200)
		e.expect(e.req("POST", "/api/v1/deployments", dep.Token, map[string]string{"name": "again"}), 403)
		e.expect(e.req("GET", "/api/v1/deployments", dep.Token, nil), 200)

		// Move to member role, then remove: access ends immediately.
		member := roles.Items[1]
		e.expect(e.req("PATCH", "/api/v1/users/"+me.User.ID, admin.Token, map[string]string{"role_id": member.ID}), 200)
		e.expect(e.req("PATCH", "/api/v1/users/"+admin.UserID, admin.Token, map[string]string{"role_id": member.ID}), 400)
		var users struct{ Items []store.Member }
		e.expect(e.req("GET", "/api/v1/users", admin.Token, nil), 200).json(t, &users)
		if len(users.Items) != 2 {
			t.Fatalf("users %+v", users)
		}
		e.expect(e.req("DELETE", "/api/v1/roles/"+custom.ID, admin.Token, nil), 204)
		e.expect(e.req("DELETE", "/api/v1/users/"+me.User.ID, admin.Token, nil), 204)
		e.expect(e.req("GET", "/api/v1/deployments", dep.Token, nil), 403)

		// A member cannot escalate: it holds no roles:write, and an inviter
		// cannot invite into a role stronger than its own.
		mem := inviteAndAccept("member@example.com", member.ID)
		e.expect(e.req("POST", "/api/v1/roles", mem.Token, map[string]any{"name": "root", "permissions": perm.All}), 403)
		e.expect(e.req("POST", "/api/v1/invitations", mem.Token, map[string]string{"email": "x@example.com"}), 403)

		// Audit: every change above is recorded; paging walks all of it.
		var page struct {
			Items      []store.AuditEvent `json:"items"`
			NextCursor string             `json:"next_cursor"`
		}
		seen := map[string]int{}
		cursor, pages := "", 0
		for pages < 100 {
			page.Items, page.NextCursor = nil, ""
			e.expect(e.req("GET", "/api/v1/audit?limit=3&cursor="+cursor, admin.Token, nil), 200).json(t, &page)
			pages++
			for _, ev := range page.Items {
				if ev.TenantID != admin.TenantID {
					t.Fatalf("foreign audit event %+v", ev)
				}
				seen[ev.Action]++
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		for _, a := range []string{"auth.signup", "role.create", "role.update", "role.delete", "invitation.create", "invitation.accept",
			"deployment.create", "user.update_role", "user.remove"} {
			if seen[a] == 0 {
				t.Errorf("no audit event %s (seen %v)", a, seen)
			}
		}
		if pages < 3 {
			t.Fatalf("paging returned %d pages", pages)
		}
		e.expect(e.req("GET", "/api/v1/audit?limit=0", admin.Token, nil), 400)
		e.expect(e.req("GET", "/api/v1/audit", mem.Token, nil), 403)
	})
}

var linkRE = regexp.MustCompile(`https?://\S+`)

func linkFrom(t *testing.T, mail string) string {
	t.Helper()
	l := linkRE.FindString(strings.ReplaceAll(mail, "=\r\n", ""))
	if l == "" {
		t.Fatalf("no link in mail:\n%s", mail)
	}
	return l
}

func tokenFrom(t *testing.T, link string) string {
	t.Helper()
	_, tok, ok := strings.Cut(link, "token=")
	if !ok || tok == "" {
		t.Fatalf("no token in %s", link)
	}
	return tok
}
