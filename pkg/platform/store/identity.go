package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/perm"
)

// An identity a tenant's OIDC provider asserts is trusted only as far as
// that tenant: any tenant administrator can register a provider that says
// anything. So an identity is keyed by (provider, subject), never matched
// to an account by e-mail, and an account it creates is owned by the
// provider (users.idp_id) and stays out of the e-mail namespace of password
// accounts. A password account gains a provider identity only by linking it
// explicitly while signed in (LinkIdentity).

// SignInWithIdP fills an audit event's empty actor with the user.
func (s *sqlStore) SignInWithIdP(ctx context.Context, idp IdentityProvider, subject string, u User) (User, error) {
	var out User
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		t := now()
		var userID string
		err := tx.QueryRowContext(ctx, s.rebind(`SELECT user_id FROM user_identities WHERE idp_id = ? AND subject = ?`), idp.ID, subject).Scan(&userID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			u.ID, u.CreatedAt, u.PasswordHash, u.IdPID = NewID(), t, "", idp.ID
			if _, err := s.exec(ctx, tx, `INSERT INTO users (id, email, name, password_hash, idp_id, created_at) VALUES (?, ?, ?, '', ?, ?)`,
				u.ID, u.Email, u.Name, u.IdPID, ms(t)); err != nil {
				return fmt.Errorf("insert user: %w", err)
			}
			if _, err := s.exec(ctx, tx, `INSERT INTO user_identities (idp_id, subject, user_id, email, created_at) VALUES (?, ?, ?, ?, ?)`,
				idp.ID, subject, u.ID, u.Email, ms(t)); err != nil {
				return fmt.Errorf("insert identity: %w", err)
			}
			out = u
		case err != nil:
			return mapErr(err)
		default:
			if out, err = scanUser(tx.QueryRowContext(ctx, s.rebind(`SELECT `+userCols+` FROM users WHERE id = ?`), userID)); err != nil {
				return err
			}
		}
		roleID, err := s.defaultRoleTx(ctx, tx, idp)
		if err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO memberships (tenant_id, user_id, role_id, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, user_id) DO NOTHING`,
			idp.TenantID, out.ID, roleID, ms(t)); err != nil {
			return err
		}
		return s.recordAudit(ctx, tx, byUser(out))
	})
	return out, err
}

// defaultRoleTx is the role the provider gives the members it provisions:
// the one an administrator chose, or the built-in no-access role.
func (s *sqlStore) defaultRoleTx(ctx context.Context, tx *sql.Tx, idp IdentityProvider) (string, error) {
	var roleID string
	var err error
	if idp.DefaultRoleID != "" {
		err = tx.QueryRowContext(ctx, s.rebind(`SELECT id FROM roles WHERE tenant_id = ? AND id = ?`), idp.TenantID, idp.DefaultRoleID).Scan(&roleID)
	} else {
		err = tx.QueryRowContext(ctx, s.rebind(`SELECT id FROM roles WHERE tenant_id = ? AND name = ? AND builtin = 1`), idp.TenantID, perm.RoleNoAccess).Scan(&roleID)
	}
	if err != nil {
		return "", fmt.Errorf("identity provider's default role: %w", mapErr(err))
	}
	return roleID, nil
}

// LinkIdentity fills an audit event's empty TenantID with the provider's
// tenant.
func (s *sqlStore) LinkIdentity(ctx context.Context, idp IdentityProvider, subject, email, userID string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `INSERT INTO user_identities (idp_id, subject, user_id, email, created_at) VALUES (?, ?, ?, ?, ?)`,
			idp.ID, subject, userID, email, ms(now())); err != nil {
			return err
		}
		return s.recordAudit(ctx, tx, func(e *AuditEvent) {
			if e.TenantID == "" {
				e.TenantID = idp.TenantID
			}
		})
	})
}

// ---- pending sign-ups ----

func (s *sqlStore) CreatePendingSignup(ctx context.Context, p PendingSignup, tokenHash string) error {
	_, err := s.exec(ctx, s.db, `INSERT INTO pending_signups (token_hash, email, name, password_hash, tenant_name, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, tokenHash, p.Email, p.Name, p.PasswordHash, p.TenantName, ms(p.ExpiresAt), ms(now()))
	return err
}

// ConfirmSignup is SignUp once the pending row is consumed (in the same
// transaction), and fills the audit event the same way.
func (s *sqlStore) ConfirmSignup(ctx context.Context, tokenHash string, t time.Time) (User, Tenant, error) {
	var u User
	var ten Tenant
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var p PendingSignup
		var exp int64
		err := tx.QueryRowContext(ctx, s.rebind(`DELETE FROM pending_signups WHERE token_hash = ?
			RETURNING email, name, password_hash, tenant_name, expires_at`), tokenHash).
			Scan(&p.Email, &p.Name, &p.PasswordHash, &p.TenantName, &exp)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && exp <= ms(t)) {
			return ErrInvalidToken
		} else if err != nil {
			return mapErr(err)
		}
		u, ten, err = s.signUpTx(ctx, tx, User{Email: p.Email, Name: p.Name, PasswordHash: p.PasswordHash}, p.TenantName)
		return err
	})
	if err != nil {
		return User{}, Tenant{}, err
	}
	return u, ten, nil
}

// SweepExpired deletes what can no longer be used. Each table has an index
// on expires_at, so this is cheap however often it runs.
func (s *sqlStore) SweepExpired(ctx context.Context, t time.Time) error {
	for _, q := range []string{
		`DELETE FROM oidc_states WHERE expires_at <= ?`,
		`DELETE FROM pending_signups WHERE expires_at <= ?`,
		`DELETE FROM password_resets WHERE expires_at <= ?`,
	} {
		if _, err := s.exec(ctx, s.db, q, ms(t)); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
	}
	return nil
}
