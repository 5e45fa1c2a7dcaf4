package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/perm"
)

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

func scanUser(row rowScanner) (User, error) {
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
