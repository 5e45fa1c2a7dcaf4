package store

import (
	"context"
	"database/sql"
	"errors"
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
	// sqlite and postgres hold statements for one dialect only, run before
	// stmts: SQLite cannot drop a constraint, so a table is rebuilt there
	// and altered in place on PostgreSQL.
	sqlite, postgres []string
	// rebuildsTables turns SQLite's foreign key enforcement off for the
	// migration (outside its transaction, as SQLite requires), so dropping
	// and recreating a referenced table neither fails nor cascades. The
	// migration checks the keys itself before it commits.
	rebuildsTables bool
}

var migrations = []migration{
	{version: 1, name: "initial schema", stmts: []string{
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
	{version: 2, name: "shell sessions and tenant shell settings", stmts: []string{
		// Rows carry no foreign key to deployments or users: like audit rows
		// they must outlive what they describe. The tenant cascade removes a
		// deleted tenant's history (its recording files are removed by the
		// shell package's retention, not by the database).
		`CREATE TABLE shell_sessions (
			id TEXT PRIMARY KEY,
			tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
			user_id TEXT NOT NULL,
			user_email TEXT NOT NULL,
			deployment_id TEXT NOT NULL,
			namespace TEXT NOT NULL,
			agent TEXT NOT NULL,
			pod TEXT NOT NULL DEFAULT '',
			container TEXT NOT NULL DEFAULT '',
			remote_addr TEXT NOT NULL DEFAULT '',
			input_recorded INTEGER NOT NULL DEFAULT 0,
			recording TEXT NOT NULL,
			recording_bytes BIGINT NOT NULL DEFAULT 0,
			started_at BIGINT NOT NULL,
			ended_at BIGINT,
			exit_code INTEGER,
			end_reason TEXT NOT NULL DEFAULT '')`,
		`CREATE INDEX shell_sessions_tenant_idx ON shell_sessions (tenant_id, id)`,
		`CREATE TABLE tenant_shell_settings (
			tenant_id TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
			record_input INTEGER NOT NULL DEFAULT 0,
			updated_at BIGINT NOT NULL)`,
	}},
	{version: 3, name: "identities keyed by provider and subject, token generations, pending sign-ups", sqlite: []string{
		// An account a tenant's identity provider created is not a password
		// account: its e-mail is whatever that provider asserted, so it must
		// not occupy the global e-mail namespace that password sign-in,
		// invitations and resets key on. Uniqueness moves to a partial index.
		`CREATE TABLE users_new (
			id TEXT PRIMARY KEY,
			email TEXT NOT NULL,
			name TEXT NOT NULL DEFAULT '',
			password_hash TEXT NOT NULL DEFAULT '',
			created_at BIGINT NOT NULL,
			idp_id TEXT NOT NULL DEFAULT '',
			token_generation BIGINT NOT NULL DEFAULT 0)`,
		`INSERT INTO users_new (id, email, name, password_hash, created_at) SELECT id, email, name, password_hash, created_at FROM users`,
		`DROP TABLE users`,
		`ALTER TABLE users_new RENAME TO users`,
	}, postgres: []string{
		`ALTER TABLE users DROP CONSTRAINT users_email_key`,
		`ALTER TABLE users ADD COLUMN idp_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0`,
	}, rebuildsTables: true, stmts: []string{
		`CREATE UNIQUE INDEX users_email_idx ON users (email) WHERE idp_id = ''`,
		// (provider, subject) is the only key of an identity a tenant's
		// provider asserts; the user it signs in was created by that provider
		// or linked explicitly by a signed-in user.
		`CREATE TABLE user_identities (
			idp_id TEXT NOT NULL REFERENCES identity_providers(id) ON DELETE CASCADE,
			subject TEXT NOT NULL,
			user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
			email TEXT NOT NULL,
			created_at BIGINT NOT NULL,
			PRIMARY KEY (idp_id, subject))`,
		`CREATE INDEX user_identities_user_idx ON user_identities (user_id)`,
		`ALTER TABLE identity_providers ADD COLUMN allowed_domains TEXT NOT NULL DEFAULT '[]'`,
		`ALTER TABLE identity_providers ADD COLUMN default_role_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE oidc_states ADD COLUMN link_user_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE oidc_states ADD COLUMN browser_hash TEXT NOT NULL DEFAULT ''`,
		`CREATE INDEX oidc_states_expires_idx ON oidc_states (expires_at)`,
		// Every tenant gets the built-in role an identity provider assigns
		// by default: no permissions until an administrator chooses a role.
		`INSERT INTO roles (id, tenant_id, name, description, permissions, builtin, created_at)
			SELECT 'no-access-' || t.id, t.id, 'no-access', 'Signed in, no permissions until an administrator assigns a role', '[]', 1, t.created_at
			FROM tenants t WHERE NOT EXISTS (SELECT 1 FROM roles r WHERE r.tenant_id = t.id AND r.name = 'no-access')`,
		// A sign-up waits here until its e-mail address is confirmed.
		`CREATE TABLE pending_signups (
			token_hash TEXT PRIMARY KEY,
			email TEXT NOT NULL,
			name TEXT NOT NULL,
			password_hash TEXT NOT NULL,
			tenant_name TEXT NOT NULL,
			expires_at BIGINT NOT NULL,
			created_at BIGINT NOT NULL)`,
		`CREATE INDEX pending_signups_expires_idx ON pending_signups (expires_at)`,
		`CREATE INDEX password_resets_expires_idx ON password_resets (expires_at)`,
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
		if err := s.applyMigrationFK(ctx, conn, m); err != nil {
			return fmt.Errorf("migrate: version %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

// applyMigrationFK applies m, with SQLite's foreign key enforcement off
// around it when m rebuilds tables.
func (s *sqlStore) applyMigrationFK(ctx context.Context, conn *sql.Conn, m migration) error {
	if !m.rebuildsTables || s.dialect != DialectSQLite {
		return s.applyMigration(ctx, conn, m)
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`) //nolint:errcheck // the connection is closed right after migrating
	return s.applyMigration(ctx, conn, m)
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
	stmts := m.sqlite
	if s.dialect == DialectPostgres {
		stmts = m.postgres
	}
	for _, stmt := range append(append([]string(nil), stmts...), m.stmts...) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%w\n%s", err, stmt)
		}
	}
	if m.rebuildsTables && s.dialect == DialectSQLite {
		var table string
		err := tx.QueryRowContext(ctx, `SELECT "table" FROM pragma_foreign_key_check LIMIT 1`).Scan(&table)
		if err == nil {
			return fmt.Errorf("foreign key violated in table %s after the migration", table)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("foreign key check: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.version, m.name, time.Now().UnixMilli()); err != nil {
		return err
	}
	s.log.Info("applied database migration", "version", m.version, "name", m.name, "dialect", s.dialect)
	return tx.Commit()
}
