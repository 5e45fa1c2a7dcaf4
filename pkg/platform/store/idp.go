package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

const idpCols = `id, tenant_id, name, issuer, client_id, client_secret_sealed, allowed_domains, default_role_id, created_at`

func scanIdP(row rowScanner) (IdentityProvider, error) {
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
	return queryAll(ctx, s, scanIdP, `SELECT `+idpCols+` FROM identity_providers WHERE tenant_id = ? ORDER BY name`, tenantID)
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
