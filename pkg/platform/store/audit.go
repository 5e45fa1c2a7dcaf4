package store

import (
	"context"
	"database/sql"
)

// An audited change is written together with its audit event, in one
// transaction: both commit or neither does, so a crash or a lost database
// connection between the two can never leave a change without its record
// (or a record of a change that did not happen).
//
// The handler that makes a change describes it with WithAudit; the store
// method that makes it writes the event. Events that are not changes (a
// login, an operator connecting) are written on their own with AppendAudit.

type auditKey struct{}

// WithAudit returns a context under which the next change the store makes
// also records e, in the same transaction. Use the context for that one
// call only: every change made under it records e again.
//
// What the caller cannot know before the change is filled in by the store:
// a create method sets an empty TargetID to the id of what it created (and
// SignUp also sets TenantID and ActorID), as each method's comment says.
// Read methods ignore the event.
func WithAudit(ctx context.Context, e AuditEvent) context.Context {
	return context.WithValue(ctx, auditKey{}, e)
}

func auditFrom(ctx context.Context) (AuditEvent, bool) {
	e, ok := ctx.Value(auditKey{}).(AuditEvent)
	return e, ok
}

// change runs fn as one unit with the audit event ctx carries: in a
// transaction when there is an event to record, straight on the database
// otherwise, so unaudited writes (heartbeats) pay for no transaction.
func (s *sqlStore) change(ctx context.Context, fn func(q querier) error) error {
	if _, ok := auditFrom(ctx); !ok {
		return fn(s.db)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error { return fn(tx) })
}

// recordAudit writes the event ctx carries, if any, through q (the change's
// transaction), after complete has filled in what the change produced.
func (s *sqlStore) recordAudit(ctx context.Context, q querier, complete func(e *AuditEvent)) error {
	e, ok := auditFrom(ctx)
	if !ok {
		return nil
	}
	if complete != nil {
		complete(&e)
	}
	return s.insertAudit(ctx, q, e)
}

// target fills an event's empty TargetID with id, the object a create made.
func target(id string) func(e *AuditEvent) {
	return func(e *AuditEvent) {
		if e.TargetID == "" {
			e.TargetID = id
		}
	}
}

func (s *sqlStore) insertAudit(ctx context.Context, q querier, e AuditEvent) error {
	if e.ID == "" {
		e.ID = NewID()
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = now()
	}
	if e.Detail == "" {
		e.Detail = "{}"
	}
	_, err := s.exec(ctx, q, `INSERT INTO audit_events (id, tenant_id, actor_id, actor_email, action, target_type, target_id, detail, remote_addr, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.TenantID, e.ActorID, e.ActorEmail, e.Action, e.TargetType, e.TargetID, e.Detail, e.RemoteAddr, ms(e.CreatedAt))
	return err
}

// execAudited runs one statement that must affect exactly one row, with the
// audit event ctx carries.
func (s *sqlStore) execAudited(ctx context.Context, query string, args ...any) error {
	return s.change(ctx, func(q querier) error {
		if err := s.execOne(ctx, q, query, args...); err != nil {
			return err
		}
		return s.recordAudit(ctx, q, nil)
	})
}

// inTenant fills an event's empty TenantID and TargetID with a tenant the
// change created or joined.
func inTenant(tenantID string) func(e *AuditEvent) {
	return func(e *AuditEvent) {
		if e.TenantID == "" {
			e.TenantID = tenantID
		}
		target(tenantID)(e)
	}
}

// byUser fills an event's empty actor with u, a user the change created or
// signed in.
func byUser(u User) func(e *AuditEvent) {
	return func(e *AuditEvent) {
		if e.ActorID == "" {
			e.ActorID, e.ActorEmail = u.ID, u.Email
		}
	}
}

// auditInEveryTenant records the event ctx carries once in each tenant
// userID belongs to, with the user as actor and target where it leaves them
// empty: a change to the user (a new password) concerns every one of them.
func (s *sqlStore) auditInEveryTenant(ctx context.Context, tx *sql.Tx, userID string) error {
	e, ok := auditFrom(ctx)
	if !ok {
		return nil
	}
	u, err := scanUser(tx.QueryRowContext(ctx, s.rebind(`SELECT `+userCols+` FROM users WHERE id = ?`), userID))
	if err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, s.rebind(`SELECT tenant_id FROM memberships WHERE user_id = ? ORDER BY tenant_id`), userID)
	if err != nil {
		return mapErr(err)
	}
	var tenants []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		tenants = append(tenants, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	byUser(u)(&e)
	target(u.ID)(&e)
	for _, tenantID := range tenants {
		ev := e
		ev.TenantID = tenantID
		if err := s.insertAudit(ctx, tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// insertAudited runs one insert (or upsert) with the audit event ctx
// carries, whose empty TargetID becomes createdID.
func (s *sqlStore) insertAudited(ctx context.Context, createdID, query string, args ...any) error {
	return s.change(ctx, func(q querier) error {
		if _, err := s.exec(ctx, q, query, args...); err != nil {
			return err
		}
		return s.recordAudit(ctx, q, target(createdID))
	})
}

func (s *sqlStore) AppendAudit(ctx context.Context, e AuditEvent) error {
	return s.insertAudit(ctx, s.db, e)
}

func (s *sqlStore) ListAudit(ctx context.Context, tenantID string, p Page) ([]AuditEvent, error) {
	if p.Limit <= 0 || p.Limit > 500 {
		p.Limit = 50
	}
	q := `SELECT id, tenant_id, actor_id, actor_email, action, target_type, target_id, detail, remote_addr, created_at
		FROM audit_events WHERE tenant_id = ?`
	args := []any{tenantID}
	if p.Before != "" {
		q += ` AND id < ?`
		args = append(args, p.Before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, p.Limit)
	rows, err := s.db.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []AuditEvent{}
	for rows.Next() {
		var e AuditEvent
		var c int64
		if err := rows.Scan(&e.ID, &e.TenantID, &e.ActorID, &e.ActorEmail, &e.Action, &e.TargetType, &e.TargetID, &e.Detail, &e.RemoteAddr, &c); err != nil {
			return nil, err
		}
		e.CreatedAt = fromMS(c)
		out = append(out, e)
	}
	return out, rows.Err()
}
