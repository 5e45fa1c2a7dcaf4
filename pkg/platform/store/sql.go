package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/exo-in-go/exo/pkg/platform/perm"
)

// sqlStore implements Store over database/sql for both dialects. Queries are
// written with ? placeholders and rebound to $n for PostgreSQL.
type sqlStore struct {
	db      *sql.DB
	dialect string
	log     *slog.Logger
}

// NewID returns a time-ordered UUIDv7, so ids double as stable paging cursors.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

func (s *sqlStore) Dialect() string { return s.dialect }
func (s *sqlStore) Close() error    { return s.db.Close() }
func (s *sqlStore) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// rebind rewrites ? placeholders to $1..$n for PostgreSQL. Queries in this
// package never contain a literal '?', so a plain scan is safe.
func (s *sqlStore) rebind(q string) string {
	if s.dialect != DialectPostgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *sqlStore) exec(ctx context.Context, q querier, query string, args ...any) (sql.Result, error) {
	res, err := q.ExecContext(ctx, s.rebind(query), args...)
	return res, mapErr(err)
}

// execOne runs a statement that must affect exactly one row; zero rows means
// the row does not exist in this tenant.
func (s *sqlStore) execOne(ctx context.Context, q querier, query string, args ...any) error {
	res, err := s.exec(ctx, q, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *sqlStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback() //nolint:errcheck // the original error matters
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", mapErr(err))
	}
	return nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }
func fromMS(v int64) time.Time {
	return time.UnixMilli(v).UTC()
}
func fromNullMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func encodePerms(p []string) string {
	if p == nil {
		p = []string{}
	}
	b, _ := json.Marshal(p)
	return string(b)
}

func decodePerms(s string) []string {
	var p []string
	if err := json.Unmarshal([]byte(s), &p); err != nil || p == nil {
		return []string{}
	}
	return p
}

// ---- tenants and users ----

func (s *sqlStore) createTenantTx(ctx context.Context, tx *sql.Tx, name, ownerID string, t time.Time) (Tenant, error) {
	ten := Tenant{ID: NewID(), Name: name, CreatedAt: t}
	if _, err := s.exec(ctx, tx, `INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)`, ten.ID, ten.Name, ms(t)); err != nil {
		return Tenant{}, fmt.Errorf("insert tenant: %w", err)
	}
	adminID := NewID()
	seeds := []struct {
		id, name, desc string
		perms          []string
	}{
		{adminID, perm.RoleAdmin, "Full access to the tenant", perm.AdminPermissions()},
		{NewID(), perm.RoleMember, "Use agents and read the tenant's resources", perm.MemberPermissions()},
		{NewID(), perm.RoleNoAccess, "Signed in, no permissions until an administrator assigns a role", []string{}},
	}
	for _, r := range seeds {
		if _, err := s.exec(ctx, tx, `INSERT INTO roles (id, tenant_id, name, description, permissions, builtin, created_at) VALUES (?, ?, ?, ?, ?, 1, ?)`,
			r.id, ten.ID, r.name, r.desc, encodePerms(r.perms), ms(t)); err != nil {
			return Tenant{}, fmt.Errorf("seed role %s: %w", r.name, err)
		}
	}
	if _, err := s.exec(ctx, tx, `INSERT INTO memberships (tenant_id, user_id, role_id, created_at) VALUES (?, ?, ?, ?)`,
		ten.ID, ownerID, adminID, ms(t)); err != nil {
		return Tenant{}, fmt.Errorf("insert owner membership: %w", err)
	}
	return ten, nil
}

// SignUp fills an audit event's empty TenantID and TargetID with the new
// tenant and its empty actor with the new user.
func (s *sqlStore) SignUp(ctx context.Context, u User, tenantName string) (User, Tenant, error) {
	var ten Tenant
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		u, ten, err = s.signUpTx(ctx, tx, u, tenantName)
		return err
	})
	if err != nil {
		return User{}, Tenant{}, err
	}
	return u, ten, nil
}

func (s *sqlStore) signUpTx(ctx context.Context, tx *sql.Tx, u User, tenantName string) (User, Tenant, error) {
	t := now()
	u.CreatedAt = t
	if u.ID == "" {
		u.ID = NewID()
	}
	if _, err := s.exec(ctx, tx, `INSERT INTO users (id, email, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		u.ID, u.Email, u.Name, u.PasswordHash, ms(t)); err != nil {
		return User{}, Tenant{}, fmt.Errorf("insert user: %w", err)
	}
	ten, err := s.createTenantTx(ctx, tx, tenantName, u.ID, t)
	if err != nil {
		return User{}, Tenant{}, err
	}
	err = s.recordAudit(ctx, tx, func(e *AuditEvent) {
		inTenant(ten.ID)(e)
		byUser(u)(e)
	})
	return u, ten, err
}

// CreateTenant fills an audit event's empty TenantID and TargetID with the
// new tenant.
func (s *sqlStore) CreateTenant(ctx context.Context, name, ownerID string) (Tenant, error) {
	var ten Tenant
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if ten, err = s.createTenantTx(ctx, tx, name, ownerID, now()); err != nil {
			return err
		}
		return s.recordAudit(ctx, tx, inTenant(ten.ID))
	})
	return ten, err
}

func (s *sqlStore) GetTenant(ctx context.Context, tenantID string) (Tenant, error) {
	var t Tenant
	var c int64
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT id, name, created_at FROM tenants WHERE id = ?`), tenantID).Scan(&t.ID, &t.Name, &c)
	t.CreatedAt = fromMS(c)
	return t, mapErr(err)
}

func (s *sqlStore) RenameTenant(ctx context.Context, tenantID, name string) (Tenant, error) {
	if err := s.execAudited(ctx, `UPDATE tenants SET name = ? WHERE id = ?`, name, tenantID); err != nil {
		return Tenant{}, err
	}
	return s.GetTenant(ctx, tenantID)
}

const userCols = `id, email, name, password_hash, idp_id, token_generation, created_at`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var c int64
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.IdPID, &u.TokenGeneration, &c)
	u.CreatedAt = fromMS(c)
	return u, mapErr(err)
}

func (s *sqlStore) GetUser(ctx context.Context, id string) (User, error) {
	return scanUser(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+userCols+` FROM users WHERE id = ?`), id))
}

// passwordAccountByEmail selects the password account with an e-mail:
// accounts an identity provider created never match.
const passwordAccountByEmail = `SELECT ` + userCols + ` FROM users WHERE email = ? AND idp_id = ''`

func (s *sqlStore) GetUserByEmail(ctx context.Context, email string) (User, error) {
	return scanUser(s.db.QueryRowContext(ctx, s.rebind(passwordAccountByEmail), email))
}

// ChangePassword records the change in each of the user's tenants.
func (s *sqlStore) ChangePassword(ctx context.Context, userID, hash string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.execOne(ctx, tx, `UPDATE users SET password_hash = ?, token_generation = token_generation + 1 WHERE id = ?`, hash, userID); err != nil {
			return err
		}
		return s.auditInEveryTenant(ctx, tx, userID)
	})
}

// RevokeTokens records the revocation in each of the user's tenants.
func (s *sqlStore) RevokeTokens(ctx context.Context, userID string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.execOne(ctx, tx, `UPDATE users SET token_generation = token_generation + 1 WHERE id = ?`, userID); err != nil {
			return err
		}
		return s.auditInEveryTenant(ctx, tx, userID)
	})
}

func (s *sqlStore) getUserTx(ctx context.Context, tx *sql.Tx, email string) (User, error) {
	return scanUser(tx.QueryRowContext(ctx, s.rebind(passwordAccountByEmail), email))
}

// ---- memberships ----

const membershipSelect = `SELECT m.tenant_id, t.name, m.user_id, r.id, r.name, r.permissions, u.token_generation
	FROM memberships m JOIN tenants t ON t.id = m.tenant_id JOIN roles r ON r.id = m.role_id AND r.tenant_id = m.tenant_id
	JOIN users u ON u.id = m.user_id`

func scanMembership(row interface{ Scan(...any) error }) (Membership, error) {
	var m Membership
	var p string
	err := row.Scan(&m.TenantID, &m.TenantName, &m.UserID, &m.RoleID, &m.RoleName, &p, &m.TokenGeneration)
	m.Permissions = decodePerms(p)
	return m, mapErr(err)
}

func (s *sqlStore) ListMemberships(ctx context.Context, userID string) ([]Membership, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(membershipSelect+` WHERE m.user_id = ? ORDER BY m.created_at, m.tenant_id`), userID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []Membership{}
	for rows.Next() {
		m, err := scanMembership(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (s *sqlStore) GetMembership(ctx context.Context, tenantID, userID string) (Membership, error) {
	return scanMembership(s.db.QueryRowContext(ctx, s.rebind(membershipSelect+` WHERE m.tenant_id = ? AND m.user_id = ?`), tenantID, userID))
}

func (s *sqlStore) ListMembers(ctx context.Context, tenantID string) ([]Member, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT u.id, u.email, u.name, u.created_at, r.id, r.name, m.created_at
		FROM memberships m JOIN users u ON u.id = m.user_id JOIN roles r ON r.id = m.role_id AND r.tenant_id = m.tenant_id
		WHERE m.tenant_id = ? ORDER BY u.email`), tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []Member{}
	for rows.Next() {
		var m Member
		var uc, jc int64
		if err := rows.Scan(&m.ID, &m.Email, &m.Name, &uc, &m.RoleID, &m.RoleName, &jc); err != nil {
			return nil, err
		}
		m.CreatedAt, m.JoinedAt = fromMS(uc), fromMS(jc)
		out = append(out, m)
	}
	return out, rows.Err()
}

func (s *sqlStore) SetMemberRole(ctx context.Context, tenantID, userID, roleID string, callerPerms []string) error {
	err := s.keepingAnAdmin(ctx, tenantID, func(tx *sql.Tx) error {
		if err := s.memberWithin(ctx, tx, tenantID, userID, callerPerms); err != nil {
			return err
		}
		if err := s.roleWithin(ctx, tx, tenantID, roleID, callerPerms); err != nil {
			return fmt.Errorf("role: %w", err)
		}
		return s.execOne(ctx, tx, `UPDATE memberships SET role_id = ? WHERE tenant_id = ? AND user_id = ?`, roleID, tenantID, userID)
	})
	// The composite foreign key rejects a role of another tenant (ErrInUse
	// from the driver); report it as not found so ids do not leak.
	if errors.Is(err, ErrInUse) {
		return fmt.Errorf("role: %w", ErrNotFound)
	}
	return err
}

func (s *sqlStore) RemoveMember(ctx context.Context, tenantID, userID string, callerPerms []string) error {
	return s.keepingAnAdmin(ctx, tenantID, func(tx *sql.Tx) error {
		if err := s.memberWithin(ctx, tx, tenantID, userID, callerPerms); err != nil {
			return err
		}
		if err := s.execOne(ctx, tx, `DELETE FROM memberships WHERE tenant_id = ? AND user_id = ?`, tenantID, userID); err != nil {
			return err
		}
		// Tokens do not name a tenant alone (a user selects any of theirs),
		// so removal revokes them all: the user signs in again.
		return s.execOne(ctx, tx, `UPDATE users SET token_generation = token_generation + 1 WHERE id = ?`, userID)
	})
}

// keepingAnAdmin runs change, with the audit event ctx carries, in a
// transaction that fails with ErrLastAdmin if the change took away the
// tenant's last member holding every permission. Changes to one tenant's
// memberships and roles are serialised (a row lock on PostgreSQL; SQLite's
// immediate transactions already are), so two administrators demoting each
// other at once cannot both succeed.
func (s *sqlStore) keepingAnAdmin(ctx context.Context, tenantID string, change func(tx *sql.Tx) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if s.dialect == DialectPostgres {
			if _, err := s.exec(ctx, tx, `SELECT id FROM tenants WHERE id = ? FOR UPDATE`, tenantID); err != nil {
				return err
			}
		}
		before, err := s.fullMembers(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		if err := change(tx); err != nil {
			return err
		}
		after, err := s.fullMembers(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		if before > 0 && after == 0 {
			return ErrLastAdmin
		}
		return s.recordAudit(ctx, tx, nil)
	})
}

// memberWithin checks, in tx, that the member's role holds nothing beyond
// callerPerms (ErrNotFound for no such member in the tenant).
func (s *sqlStore) memberWithin(ctx context.Context, tx *sql.Tx, tenantID, userID string, callerPerms []string) error {
	var p string
	err := tx.QueryRowContext(ctx, s.rebind(`SELECT r.permissions FROM memberships m
		JOIN roles r ON r.id = m.role_id AND r.tenant_id = m.tenant_id WHERE m.tenant_id = ? AND m.user_id = ?`), tenantID, userID).Scan(&p)
	if err != nil {
		return mapErr(err)
	}
	if !perm.HasAll(callerPerms, decodePerms(p)) {
		return ErrNotPermitted
	}
	return nil
}

// roleWithin checks, in tx, that the role holds nothing beyond callerPerms
// (ErrNotFound for no such role in the tenant).
func (s *sqlStore) roleWithin(ctx context.Context, tx *sql.Tx, tenantID, roleID string, callerPerms []string) error {
	var p string
	if err := tx.QueryRowContext(ctx, s.rebind(`SELECT permissions FROM roles WHERE tenant_id = ? AND id = ?`), tenantID, roleID).Scan(&p); err != nil {
		return mapErr(err)
	}
	if !perm.HasAll(callerPerms, decodePerms(p)) {
		return ErrNotPermitted
	}
	return nil
}

// fullMembers counts the tenant's members whose role holds every permission.
func (s *sqlStore) fullMembers(ctx context.Context, tx *sql.Tx, tenantID string) (int, error) {
	rows, err := tx.QueryContext(ctx, s.rebind(`SELECT r.permissions FROM memberships m
		JOIN roles r ON r.id = m.role_id AND r.tenant_id = m.tenant_id WHERE m.tenant_id = ?`), tenantID)
	if err != nil {
		return 0, mapErr(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return 0, err
		}
		if perm.HasAll(decodePerms(p), perm.All) {
			n++
		}
	}
	return n, rows.Err()
}

// ---- roles ----

const roleCols = `id, tenant_id, name, description, permissions, builtin, created_at`

func scanRole(row interface{ Scan(...any) error }) (Role, error) {
	var r Role
	var p string
	var c int64
	var b int
	err := row.Scan(&r.ID, &r.TenantID, &r.Name, &r.Description, &p, &b, &c)
	r.Permissions, r.Builtin, r.CreatedAt = decodePerms(p), b == 1, fromMS(c)
	return r, mapErr(err)
}

func (s *sqlStore) ListRoles(ctx context.Context, tenantID string) ([]Role, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+roleCols+` FROM roles WHERE tenant_id = ? ORDER BY created_at, name`), tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []Role{}
	for rows.Next() {
		r, err := scanRole(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *sqlStore) GetRole(ctx context.Context, tenantID, id string) (Role, error) {
	return scanRole(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+roleCols+` FROM roles WHERE tenant_id = ? AND id = ?`), tenantID, id))
}

// CreateRole fills an audit event's empty TargetID with the new role.
func (s *sqlStore) CreateRole(ctx context.Context, tenantID string, r Role) (Role, error) {
	r.ID, r.TenantID, r.CreatedAt, r.Builtin = NewID(), tenantID, now(), false
	err := s.insertAudited(ctx, r.ID, `INSERT INTO roles (id, tenant_id, name, description, permissions, builtin, created_at) VALUES (?, ?, ?, ?, ?, 0, ?)`,
		r.ID, tenantID, r.Name, r.Description, encodePerms(r.Permissions), ms(r.CreatedAt))
	if err != nil {
		return Role{}, err
	}
	return s.GetRole(ctx, tenantID, r.ID)
}

func (s *sqlStore) UpdateRole(ctx context.Context, tenantID string, r Role, callerPerms []string) (Role, error) {
	err := s.keepingAnAdmin(ctx, tenantID, func(tx *sql.Tx) error {
		if err := s.refuseBuiltin(ctx, tx, tenantID, r.ID); err != nil {
			return err
		}
		if err := s.roleWithin(ctx, tx, tenantID, r.ID, callerPerms); err != nil {
			return err
		}
		if !perm.HasAll(callerPerms, r.Permissions) {
			return ErrNotPermitted
		}
		return s.execOne(ctx, tx, `UPDATE roles SET name = ?, description = ?, permissions = ? WHERE tenant_id = ? AND id = ?`,
			r.Name, r.Description, encodePerms(r.Permissions), tenantID, r.ID)
	})
	if err != nil {
		return Role{}, err
	}
	return s.GetRole(ctx, tenantID, r.ID)
}

// refuseBuiltin answers ErrNotFound for a role not in the tenant and
// ErrBuiltin for a built-in one.
func (s *sqlStore) refuseBuiltin(ctx context.Context, tx *sql.Tx, tenantID, id string) error {
	var builtin int
	if err := tx.QueryRowContext(ctx, s.rebind(`SELECT builtin FROM roles WHERE tenant_id = ? AND id = ?`), tenantID, id).Scan(&builtin); err != nil {
		return mapErr(err)
	}
	if builtin == 1 {
		return ErrBuiltin
	}
	return nil
}

func (s *sqlStore) DeleteRole(ctx context.Context, tenantID, id string, callerPerms []string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.refuseBuiltin(ctx, tx, tenantID, id); err != nil {
			return err
		}
		if err := s.roleWithin(ctx, tx, tenantID, id, callerPerms); err != nil {
			return err
		}
		var idps int
		if err := tx.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM identity_providers WHERE tenant_id = ? AND default_role_id = ?`), tenantID, id).Scan(&idps); err != nil {
			return err
		}
		if idps > 0 {
			return fmt.Errorf("role is the default role of %d identity provider(s): %w", idps, ErrInUse)
		}
		// Checked explicitly (not only by the foreign key) so the answer is the
		// same on both backends and before any cascade to invitations runs.
		var n int
		if err := tx.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM memberships WHERE tenant_id = ? AND role_id = ?`), tenantID, id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("role has %d member(s): %w", n, ErrInUse)
		}
		if err := s.execOne(ctx, tx, `DELETE FROM roles WHERE tenant_id = ? AND id = ?`, tenantID, id); err != nil {
			return err
		}
		return s.recordAudit(ctx, tx, nil)
	})
}

// ---- deployments ----

const deploymentCols = `id, tenant_id, name, token_prefix, token_issued_at, status, last_heartbeat_at, created_by, created_at`

func scanDeployment(row interface{ Scan(...any) error }) (Deployment, error) {
	var d Deployment
	var issued, created int64
	var hb sql.NullInt64
	err := row.Scan(&d.ID, &d.TenantID, &d.Name, &d.TokenPrefix, &issued, &d.Status, &hb, &d.CreatedBy, &created)
	d.TokenIssuedAt, d.CreatedAt, d.LastHeartbeatAt = fromMS(issued), fromMS(created), fromNullMS(hb)
	return d, mapErr(err)
}

// CreateDeployment fills an audit event's empty TargetID with the new
// deployment.
func (s *sqlStore) CreateDeployment(ctx context.Context, tenantID string, d Deployment, tokenHash string) (Deployment, error) {
	t := now()
	d.ID, d.TenantID, d.CreatedAt, d.Status = NewID(), tenantID, t, StatusPending
	if d.TokenIssuedAt.IsZero() {
		d.TokenIssuedAt = t
	}
	err := s.insertAudited(ctx, d.ID, `INSERT INTO deployments (id, tenant_id, name, token_hash, token_prefix, token_issued_at, status, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, tenantID, d.Name, tokenHash, d.TokenPrefix, ms(d.TokenIssuedAt), d.Status, d.CreatedBy, ms(t))
	if err != nil {
		return Deployment{}, err
	}
	return s.GetDeployment(ctx, tenantID, d.ID)
}

func (s *sqlStore) ListDeployments(ctx context.Context, tenantID string) ([]Deployment, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+deploymentCols+` FROM deployments WHERE tenant_id = ? ORDER BY name`), tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []Deployment{}
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (s *sqlStore) GetDeployment(ctx context.Context, tenantID, id string) (Deployment, error) {
	return scanDeployment(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+deploymentCols+` FROM deployments WHERE tenant_id = ? AND id = ?`), tenantID, id))
}

func (s *sqlStore) DeleteDeployment(ctx context.Context, tenantID, id string) error {
	return s.execAudited(ctx, `DELETE FROM deployments WHERE tenant_id = ? AND id = ?`, tenantID, id)
}

func (s *sqlStore) RotateDeploymentToken(ctx context.Context, tenantID, id, tokenHash, prefix string, issuedAt time.Time) (Deployment, error) {
	if err := s.execAudited(ctx, `UPDATE deployments SET token_hash = ?, token_prefix = ?, token_issued_at = ? WHERE tenant_id = ? AND id = ?`,
		tokenHash, prefix, ms(issuedAt), tenantID, id); err != nil {
		return Deployment{}, err
	}
	return s.GetDeployment(ctx, tenantID, id)
}

func (s *sqlStore) GetDeploymentByTokenHash(ctx context.Context, tokenHash string) (Deployment, error) {
	var d Deployment
	var issued, created int64
	var hb sql.NullInt64
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT `+deploymentCols+`, token_hash FROM deployments WHERE token_hash = ?`), tokenHash).
		Scan(&d.ID, &d.TenantID, &d.Name, &d.TokenPrefix, &issued, &d.Status, &hb, &d.CreatedBy, &created, &d.TokenHash)
	d.TokenIssuedAt, d.CreatedAt, d.LastHeartbeatAt = fromMS(issued), fromMS(created), fromNullMS(hb)
	return d, mapErr(err)
}

func (s *sqlStore) SetDeploymentStatus(ctx context.Context, tenantID, id, status string, heartbeat time.Time) error {
	if !ValidStatus(status) {
		return fmt.Errorf("invalid deployment status %q", status)
	}
	if heartbeat.IsZero() {
		return s.execAudited(ctx, `UPDATE deployments SET status = ? WHERE tenant_id = ? AND id = ?`, status, tenantID, id)
	}
	return s.execAudited(ctx, `UPDATE deployments SET status = ?, last_heartbeat_at = ? WHERE tenant_id = ? AND id = ?`,
		status, ms(heartbeat), tenantID, id)
}

// ---- invitations ----

const invitationCols = `id, tenant_id, email, role_id, invited_by, expires_at, accepted_at, created_at`

func scanInvitation(row interface{ Scan(...any) error }) (Invitation, error) {
	var inv Invitation
	var exp, c int64
	var acc sql.NullInt64
	err := row.Scan(&inv.ID, &inv.TenantID, &inv.Email, &inv.RoleID, &inv.InvitedBy, &exp, &acc, &c)
	inv.ExpiresAt, inv.AcceptedAt, inv.CreatedAt = fromMS(exp), fromNullMS(acc), fromMS(c)
	return inv, mapErr(err)
}

// CreateInvitation fills an audit event's empty TargetID with the new
// invitation.
func (s *sqlStore) CreateInvitation(ctx context.Context, inv Invitation, tokenHash string) (Invitation, error) {
	inv.ID, inv.CreatedAt = NewID(), now()
	inv.ExpiresAt = inv.ExpiresAt.UTC().Truncate(time.Millisecond)
	err := s.insertAudited(ctx, inv.ID, `INSERT INTO invitations (id, tenant_id, email, role_id, token_hash, invited_by, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		inv.ID, inv.TenantID, inv.Email, inv.RoleID, tokenHash, inv.InvitedBy, ms(inv.ExpiresAt), ms(inv.CreatedAt))
	if errors.Is(err, ErrInUse) {
		return Invitation{}, fmt.Errorf("role: %w", ErrNotFound)
	}
	return inv, err
}

func (s *sqlStore) ListInvitations(ctx context.Context, tenantID string) ([]Invitation, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+invitationCols+` FROM invitations WHERE tenant_id = ? ORDER BY id DESC`), tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []Invitation{}
	for rows.Next() {
		inv, err := scanInvitation(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, inv)
	}
	return out, rows.Err()
}

func (s *sqlStore) DeleteInvitation(ctx context.Context, tenantID, id string) error {
	return s.execAudited(ctx, `DELETE FROM invitations WHERE tenant_id = ? AND id = ?`, tenantID, id)
}

func (s *sqlStore) PeekInvitation(ctx context.Context, tokenHash string, t time.Time) (Invitation, error) {
	inv, err := scanInvitation(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+invitationCols+` FROM invitations
		WHERE token_hash = ? AND accepted_at IS NULL AND expires_at > ?`), tokenHash, ms(t)))
	if errors.Is(err, ErrNotFound) {
		return Invitation{}, ErrInvalidToken
	}
	return inv, err
}

// AcceptInvitation fills an audit event's empty TenantID with the
// invitation's tenant, its empty actor with the user who accepted, and its
// TargetID with the invitation.
func (s *sqlStore) AcceptInvitation(ctx context.Context, tokenHash string, t time.Time, newUser User, signedInUserID string) (User, Invitation, error) {
	var u User
	var inv Invitation
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		inv, err = scanInvitation(tx.QueryRowContext(ctx, s.rebind(`SELECT `+invitationCols+` FROM invitations
			WHERE token_hash = ? AND accepted_at IS NULL AND expires_at > ?`), tokenHash, ms(t)))
		if errors.Is(err, ErrNotFound) {
			return ErrInvalidToken
		} else if err != nil {
			return err
		}
		// The conditional update is what makes the link single-use even when
		// two requests race (PostgreSQL READ COMMITTED re-checks the predicate).
		if err := s.execOne(ctx, tx, `UPDATE invitations SET accepted_at = ? WHERE id = ? AND accepted_at IS NULL`, ms(t), inv.ID); err != nil {
			if errors.Is(err, ErrNotFound) {
				return ErrInvalidToken
			}
			return err
		}
		acc := t.UTC().Truncate(time.Millisecond)
		inv.AcceptedAt = &acc
		u, err = s.getUserTx(ctx, tx, inv.Email)
		if err == nil && u.ID != signedInUserID {
			// The link alone must not open an existing account.
			return ErrSignInRequired
		}
		if errors.Is(err, ErrNotFound) {
			if newUser.PasswordHash == "" {
				return fmt.Errorf("a new account needs a password: %w", ErrSignInRequired)
			}
			u = newUser
			u.ID, u.Email, u.CreatedAt = NewID(), inv.Email, now()
			if _, err := s.exec(ctx, tx, `INSERT INTO users (id, email, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
				u.ID, u.Email, u.Name, u.PasswordHash, ms(u.CreatedAt)); err != nil {
				return fmt.Errorf("insert user: %w", err)
			}
		} else if err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO memberships (tenant_id, user_id, role_id, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, user_id) DO NOTHING`,
			inv.TenantID, u.ID, inv.RoleID, ms(t)); err != nil {
			return err
		}
		return s.recordAudit(ctx, tx, func(e *AuditEvent) {
			inTenant(inv.TenantID)(e)
			byUser(u)(e)
			e.TargetID = inv.ID
		})
	})
	return u, inv, err
}

// ---- password resets ----

func (s *sqlStore) CreatePasswordReset(ctx context.Context, pr PasswordReset, tokenHash string) error {
	_, err := s.exec(ctx, s.db, `INSERT INTO password_resets (id, user_id, token_hash, expires_at, created_at) VALUES (?, ?, ?, ?, ?)`,
		NewID(), pr.UserID, tokenHash, ms(pr.ExpiresAt), ms(now()))
	return err
}

func (s *sqlStore) PeekPasswordReset(ctx context.Context, tokenHash string, t time.Time) error {
	var id string
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT id FROM password_resets WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?`),
		tokenHash, ms(t)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrInvalidToken
	}
	return mapErr(err)
}

// ConsumePasswordReset records an audit event in every tenant the user
// belongs to (a reset concerns each of them), with the user as actor and
// target where the event leaves them empty.
func (s *sqlStore) ConsumePasswordReset(ctx context.Context, tokenHash string, t time.Time, newHash string) (string, error) {
	var userID string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var id string
		err := tx.QueryRowContext(ctx, s.rebind(`SELECT id, user_id FROM password_resets WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?`),
			tokenHash, ms(t)).Scan(&id, &userID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrInvalidToken
		} else if err != nil {
			return err
		}
		if err := s.execOne(ctx, tx, `UPDATE password_resets SET used_at = ? WHERE id = ? AND used_at IS NULL`, ms(t), id); err != nil {
			if errors.Is(err, ErrNotFound) {
				return ErrInvalidToken
			}
			return err
		}
		// A successful reset also retires every other outstanding reset link.
		if _, err := s.exec(ctx, tx, `UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL`, ms(t), userID); err != nil {
			return err
		}
		if err := s.execOne(ctx, tx, `UPDATE users SET password_hash = ?, token_generation = token_generation + 1 WHERE id = ?`, newHash, userID); err != nil {
			return err
		}
		return s.auditInEveryTenant(ctx, tx, userID)
	})
	return userID, err
}

// ---- audit ----

func (s *sqlStore) AppendAudit(ctx context.Context, e AuditEvent) error {
	return s.insertAudit(ctx, s.db, e)
}

func (s *sqlStore) ListAudit(ctx context.Context, tenantID string, p Page) ([]AuditEvent, error) {
	if p.Limit <= 0 || p.Limit > 500 {
		p.Limit = 50
	}
	q := `SELECT id, tenant_id, actor_id, actor_email, action, target_type, target_id, detail, remote_addr, created_at
		FROM audit_events WHERE tenant_id = ?`
	args := []any{tenantID}
	if p.Before != "" {
		q += ` AND id < ?`
		args = append(args, p.Before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, p.Limit)
	rows, err := s.db.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []AuditEvent{}
	for rows.Next() {
		var e AuditEvent
		var c int64
		if err := rows.Scan(&e.ID, &e.TenantID, &e.ActorID, &e.ActorEmail, &e.Action, &e.TargetType, &e.TargetID, &e.Detail, &e.RemoteAddr, &c); err != nil {
			return nil, err
		}
		e.CreatedAt = fromMS(c)
		out = append(out, e)
	}
	return out, rows.Err()
}

// ---- identity providers and OIDC state ----

const idpCols = `id, tenant_id, name, issuer, client_id, client_secret_sealed, allowed_domains, default_role_id, created_at`

func scanIdP(row interface{ Scan(...any) error }) (IdentityProvider, error) {
	var i IdentityProvider
	var c int64
	var domains string
	err := row.Scan(&i.ID, &i.TenantID, &i.Name, &i.Issuer, &i.ClientID, &i.ClientSecretSealed, &domains, &i.DefaultRoleID, &c)
	i.CreatedAt, i.AllowedDomains = fromMS(c), decodePerms(domains)
	return i, mapErr(err)
}

// CreateIdP fills an audit event's empty TargetID with the new provider.
func (s *sqlStore) CreateIdP(ctx context.Context, tenantID string, i IdentityProvider) (IdentityProvider, error) {
	if i.ID == "" {
		i.ID = NewID()
	}
	i.TenantID, i.CreatedAt = tenantID, now()
	if i.AllowedDomains == nil {
		i.AllowedDomains = []string{}
	}
	err := s.insertAudited(ctx, i.ID, `INSERT INTO identity_providers (id, tenant_id, name, issuer, client_id, client_secret_sealed, allowed_domains, default_role_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		i.ID, tenantID, i.Name, i.Issuer, i.ClientID, i.ClientSecretSealed, encodePerms(i.AllowedDomains), i.DefaultRoleID, ms(i.CreatedAt))
	if errors.Is(err, ErrInUse) {
		return IdentityProvider{}, fmt.Errorf("default role: %w", ErrNotFound)
	}
	return i, err
}

func (s *sqlStore) ListIdPs(ctx context.Context, tenantID string) ([]IdentityProvider, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+idpCols+` FROM identity_providers WHERE tenant_id = ? ORDER BY name`), tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []IdentityProvider{}
	for rows.Next() {
		i, err := scanIdP(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, i)
	}
	return out, rows.Err()
}

func (s *sqlStore) GetIdP(ctx context.Context, tenantID, id string) (IdentityProvider, error) {
	return scanIdP(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+idpCols+` FROM identity_providers WHERE tenant_id = ? AND id = ?`), tenantID, id))
}

func (s *sqlStore) DeleteIdP(ctx context.Context, tenantID, id string) error {
	return s.execAudited(ctx, `DELETE FROM identity_providers WHERE tenant_id = ? AND id = ?`, tenantID, id)
}

// SaveOIDCState writes one row; expired rows are swept in the background
// (SweepExpired), so a burst of sign-in starts costs no table scans.
func (s *sqlStore) SaveOIDCState(ctx context.Context, st OIDCState) error {
	_, err := s.exec(ctx, s.db, `INSERT INTO oidc_states (state_hash, tenant_id, idp_id, nonce, code_verifier, link_user_id, browser_hash, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		st.StateHash, st.TenantID, st.IdPID, st.Nonce, st.CodeVerifier, st.LinkUserID, st.BrowserHash, ms(st.ExpiresAt))
	return err
}

func (s *sqlStore) ConsumeOIDCState(ctx context.Context, stateHash string, t time.Time) (OIDCState, error) {
	var st OIDCState
	var exp int64
	err := s.db.QueryRowContext(ctx, s.rebind(`DELETE FROM oidc_states WHERE state_hash = ?
		RETURNING state_hash, tenant_id, idp_id, nonce, code_verifier, link_user_id, browser_hash, expires_at`), stateHash).
		Scan(&st.StateHash, &st.TenantID, &st.IdPID, &st.Nonce, &st.CodeVerifier, &st.LinkUserID, &st.BrowserHash, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return OIDCState{}, ErrInvalidToken
	} else if err != nil {
		return OIDCState{}, mapErr(err)
	}
	st.ExpiresAt = fromMS(exp)
	if !st.ExpiresAt.After(t) {
		return OIDCState{}, ErrInvalidToken
	}
	return st, nil
}
