package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// sqlStore implements Store over database/sql for both dialects. Queries are
// written with ? placeholders and rebound to $n for PostgreSQL.
type sqlStore struct {
	db      *sql.DB
	dialect string
	log     *slog.Logger
}

// NewID returns a time-ordered UUIDv7, so ids double as stable paging cursors.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

func (s *sqlStore) Dialect() string { return s.dialect }
func (s *sqlStore) Close() error    { return s.db.Close() }
func (s *sqlStore) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// rebind rewrites ? placeholders to $1..$n for PostgreSQL. Queries in this
// package never contain a literal '?', so a plain scan is safe.
func (s *sqlStore) rebind(q string) string {
	if s.dialect != DialectPostgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// rowScanner is a *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(...any) error }

// queryAll runs q (rebound) and scans every row with scan. No rows is an
// empty, non-nil slice, so that the API answers [] rather than null.
func queryAll[T any](ctx context.Context, s *sqlStore, scan func(rowScanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *sqlStore) exec(ctx context.Context, q querier, query string, args ...any) (sql.Result, error) {
	res, err := q.ExecContext(ctx, s.rebind(query), args...)
	return res, mapErr(err)
}

// execOne runs a statement that must affect exactly one row; zero rows means
// the row does not exist in this tenant.
func (s *sqlStore) execOne(ctx context.Context, q querier, query string, args ...any) error {
	res, err := s.exec(ctx, q, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *sqlStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback() //nolint:errcheck // the original error matters
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", mapErr(err))
	}
	return nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }
func fromMS(v int64) time.Time {
	return time.UnixMilli(v).UTC()
}
func fromNullMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func encodePerms(p []string) string {
	if p == nil {
		p = []string{}
	}
	b, _ := json.Marshal(p)
	return string(b)
}

func decodePerms(s string) []string {
	var p []string
	if err := json.Unmarshal([]byte(s), &p); err != nil || p == nil {
		return []string{}
	}
	return p
}
