package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

const invitationCols = `id, tenant_id, email, role_id, invited_by, expires_at, accepted_at, created_at`

func scanInvitation(row rowScanner) (Invitation, error) {
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
	return queryAll(ctx, s, scanInvitation, `SELECT `+invitationCols+` FROM invitations WHERE tenant_id = ? ORDER BY id DESC`, tenantID)
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
