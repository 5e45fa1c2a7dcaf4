package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migration is one forward-only schema version. The SQL is written in the
// common subset of SQLite and PostgreSQL (TEXT ids, BIGINT unix-millisecond
// timestamps, INTEGER flags) so both backends run the very same statements.
type migration struct {
	version int
	name    string
	stmts   []string
}

var migrations = []migration{
	{1, "initial schema", []string{
		`CREATE TABLE tenants (
			id TEXT PRIMARY KEY,
			name TEXT NOT NULL,
			created_at BIGINT NOT NULL)`,
		// E-mails are normalised to lower case before they reach the store,
		// so the UNIQUE constraint is case-insensitive in effect.
		`CREATE TABLE users (
			id TEXT PRIMARY KEY,
			email TEXT NOT NULL UNIQUE,
			name TEXT NOT NULL DEFAULT '',
			password_hash TEXT NOT NULL DEFAULT '',
			created_at BIGINT NOT NULL)`,
		`CREATE TABLE roles (
			id TEXT PRIMARY KEY,
			tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
			name TEXT NOT NULL,
			description TEXT NOT NULL DEFAULT '',
			permissions TEXT NOT NULL,
			builtin INTEGER NOT NULL DEFAULT 0,
			created_at BIGINT NOT NULL,
			UNIQUE (tenant_id, name),
			UNIQUE (tenant_id, id))`,
		// The composite foreign key makes it impossible, at the database level,
		// to give a member a role of another tenant.
		`CREATE TABLE memberships (
			tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
			user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
			role_id TEXT NOT NULL,
			created_at BIGINT NOT NULL,
			PRIMARY KEY (tenant_id, user_id),
			FOREIGN KEY (tenant_id, role_id) REFERENCES roles(tenant_id, id))`,
		`CREATE INDEX memberships_user_idx ON memberships (user_id)`,
		`CREATE TABLE deployments (
			id TEXT PRIMARY KEY,
			tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
			name TEXT NOT NULL,
			token_hash TEXT NOT NULL UNIQUE,
			token_prefix TEXT NOT NULL,
			token_issued_at BIGINT NOT NULL,
			status TEXT NOT NULL DEFAULT 'pending',
			last_heartbeat_at BIGINT,
			created_by TEXT NOT NULL DEFAULT '',
			created_at BIGINT NOT NULL,
			UNIQUE (tenant_id, name))`,
		`CREATE TABLE invitations (
			id TEXT PRIMARY KEY,
			tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
			email TEXT NOT NULL,
			role_id TEXT NOT NULL,
			token_hash TEXT NOT NULL UNIQUE,
			invited_by TEXT NOT NULL,
			expires_at BIGINT NOT NULL,
			accepted_at BIGINT,
			created_at BIGINT NOT NULL,
			FOREIGN KEY (tenant_id, role_id) REFERENCES roles(tenant_id, id) ON DELETE CASCADE)`,
		`CREATE INDEX invitations_tenant_idx ON invitations (tenant_id, id)`,
		`CREATE TABLE password_resets (
			id TEXT PRIMARY KEY,
			user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
			token_hash TEXT NOT NULL UNIQUE,
			expires_at BIGINT NOT NULL,
			used_at BIGINT,
			created_at BIGINT NOT NULL)`,
		// Audit rows deliberately carry no foreign keys: they must outlive the
		// objects (and users) they describe.
		`CREATE TABLE audit_events (
			id TEXT PRIMARY KEY,
			tenant_id TEXT NOT NULL,
			actor_id TEXT NOT NULL,
			actor_email TEXT NOT NULL,
			action TEXT NOT NULL,
			target_type TEXT NOT NULL,
			target_id TEXT NOT NULL,
			detail TEXT NOT NULL,
			remote_addr TEXT NOT NULL,
			created_at BIGINT NOT NULL)`,
		`CREATE INDEX audit_events_tenant_idx ON audit_events (tenant_id, id)`,
		`CREATE TABLE identity_providers (
			id TEXT PRIMARY KEY,
			tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
			name TEXT NOT NULL,
			issuer TEXT NOT NULL,
			client_id TEXT NOT NULL,
			client_secret_sealed TEXT NOT NULL,
			created_at BIGINT NOT NULL,
			UNIQUE (tenant_id, name))`,
		`CREATE TABLE oidc_states (
			state_hash TEXT PRIMARY KEY,
			tenant_id TEXT NOT NULL,
			idp_id TEXT NOT NULL,
			nonce TEXT NOT NULL,
			code_verifier TEXT NOT NULL,
			expires_at BIGINT NOT NULL)`,
	}},
}

// migrate applies pending migrations, each in its own transaction. On
// PostgreSQL a session advisory lock serialises replicas that boot at the
// same time; on SQLite the immediate transaction lock does the same.
func (s *sqlStore) migrate(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: get connection: %w", err)
	}
	defer conn.Close()

	if s.dialect == DialectPostgres {
		const lockKey = 0x65786f6d6967 // "exomig"
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
			return fmt.Errorf("migrate: advisory lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey) //nolint:errcheck // released with the session anyway
	}

	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}

	for _, m := range migrations {
		if err := s.applyMigration(ctx, conn, m); err != nil {
			return fmt.Errorf("migrate: version %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

func (s *sqlStore) applyMigration(ctx context.Context, conn *sql.Conn, m migration) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit

	var n int
	if err := tx.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	for _, stmt := range m.stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%w\n%s", err, stmt)
		}
	}
	if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.version, m.name, time.Now().UnixMilli()); err != nil {
		return err
	}
	s.log.Info("applied database migration", "version", m.version, "name", m.name, "dialect", s.dialect)
	return tx.Commit()
}

// SchemaVersion is the newest migration version this binary knows.
func SchemaVersion() int { return migrations[len(migrations)-1].version }
