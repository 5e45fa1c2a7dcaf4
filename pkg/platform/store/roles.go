package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/exo-in-go/exo/pkg/platform/perm"
)

const roleCols = `id, tenant_id, name, description, permissions, builtin, created_at`

func scanRole(row rowScanner) (Role, error) {
	var r Role
	var p string
	var c int64
	var b int
	err := row.Scan(&r.ID, &r.TenantID, &r.Name, &r.Description, &p, &b, &c)
	r.Permissions, r.Builtin, r.CreatedAt = decodePerms(p), b == 1, fromMS(c)
	return r, mapErr(err)
}

func (s *sqlStore) ListRoles(ctx context.Context, tenantID string) ([]Role, error) {
	return queryAll(ctx, s, scanRole, `SELECT `+roleCols+` FROM roles WHERE tenant_id = ? ORDER BY created_at, name`, tenantID)
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
