package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

const deploymentCols = `id, tenant_id, name, token_prefix, token_issued_at, status, last_heartbeat_at, created_by, created_at`

func scanDeployment(row rowScanner) (Deployment, error) {
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
	return queryAll(ctx, s, scanDeployment, `SELECT `+deploymentCols+` FROM deployments WHERE tenant_id = ? ORDER BY name`, tenantID)
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
