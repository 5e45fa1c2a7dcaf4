package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
)

const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

var keywordDSN = regexp.MustCompile(`^\s*[a-z_]+\s*=`)

// IsPostgresDSN reports whether dsn selects PostgreSQL: a postgres:// or
// postgresql:// URL, or a libpq keyword string such as "host=db dbname=exo".
func IsPostgresDSN(dsn string) bool {
	l := strings.ToLower(dsn)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://") || keywordDSN.MatchString(l)
}

// Open connects to the database named by dsn and applies pending
// migrations. Anything that is not a Postgres DSN is a SQLite file path,
// optionally written as "sqlite:path" or "file:path?...".
func Open(ctx context.Context, dsn string, log *slog.Logger) (Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &sqlStore{log: log}
	var err error
	if IsPostgresDSN(dsn) {
		s.dialect = DialectPostgres
		s.db, err = sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		// Enough connections for a busy API replica, while staying well under
		// the server's default max_connections=100 when running two replicas.
		s.db.SetMaxOpenConns(40)
		s.db.SetMaxIdleConns(20)
		s.db.SetConnMaxIdleTime(5 * time.Minute)
	} else {
		s.dialect = DialectSQLite
		s.db, err = sql.Open("sqlite", sqliteDSN(dsn))
		if err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		// WAL lets readers run concurrently with the single writer; a few
		// connections are plenty for one process and bound file handles.
		s.db.SetMaxOpenConns(8)
		s.db.SetMaxIdleConns(8)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.db.PingContext(pingCtx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("connect to %s database: %w", s.dialect, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// sqliteDSN turns a path into a modernc.org/sqlite DSN with the pragmas
// exo-app relies on: WAL, a busy timeout so concurrent writers wait instead
// of failing, foreign keys, and BEGIN IMMEDIATE so read-then-write
// transactions never dead-lock on lock upgrade.
func sqliteDSN(dsn string) string {
	path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite://"), "sqlite:")
	query := url.Values{}
	if p, q, ok := strings.Cut(path, "?"); ok {
		path = p
		query, _ = url.ParseQuery(q)
	}
	if !strings.HasPrefix(path, "file:") {
		path = "file:" + path
	}
	have := strings.Join(query["_pragma"], ",")
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
		name, _, _ := strings.Cut(p, "(")
		if !strings.Contains(have, name) {
			query.Add("_pragma", p)
		}
	}
	if query.Get("_txlock") == "" {
		query.Set("_txlock", "immediate")
	}
	return path + "?" + query.Encode()
}

// mapErr turns driver constraint errors into the package's sentinel errors.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return fmt.Errorf("%w: %s", ErrConflict, pgErr.ConstraintName)
		case "23503":
			return fmt.Errorf("%w: %s", ErrInUse, pgErr.ConstraintName)
		}
		return err
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		// Extended result codes: SQLITE_CONSTRAINT_UNIQUE, _PRIMARYKEY, _FOREIGNKEY.
		switch sqErr.Code() {
		case 2067, 1555:
			return fmt.Errorf("%w: %s", ErrConflict, sqErr.Error())
		case 787:
			return fmt.Errorf("%w: %s", ErrInUse, sqErr.Error())
		}
	}
	return err
}
