package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/exo-in-go/exo/pkg/platform/perm"
)

const membershipSelect = `SELECT m.tenant_id, t.name, m.user_id, r.id, r.name, r.permissions, u.token_generation
	FROM memberships m JOIN tenants t ON t.id = m.tenant_id JOIN roles r ON r.id = m.role_id AND r.tenant_id = m.tenant_id
	JOIN users u ON u.id = m.user_id`

func scanMembership(row rowScanner) (Membership, error) {
	var m Membership
	var p string
	err := row.Scan(&m.TenantID, &m.TenantName, &m.UserID, &m.RoleID, &m.RoleName, &p, &m.TokenGeneration)
	m.Permissions = decodePerms(p)
	return m, mapErr(err)
}

func (s *sqlStore) ListMemberships(ctx context.Context, userID string) ([]Membership, error) {
	return queryAll(ctx, s, scanMembership, membershipSelect+` WHERE m.user_id = ? ORDER BY m.created_at, m.tenant_id`, userID)
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
