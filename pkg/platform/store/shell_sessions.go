package store

import (
	"context"
	"database/sql"
	"time"
)

// Browser shell sessions (pkg/platform/shell) and the tenant's shell
// settings (their tables: migration 2).

// ShellSession is one browser shell: who opened it on which agent, when,
// how it ended, and where its asciicast recording is.
type ShellSession struct {
	ID           string `json:"id"`
	TenantID     string `json:"tenant_id"`
	UserID       string `json:"user_id"`
	UserEmail    string `json:"user_email"`
	DeploymentID string `json:"deployment_id"`
	Namespace    string `json:"namespace"`
	Agent        string `json:"agent"`
	Pod          string `json:"pod"`
	Container    string `json:"container"`
	RemoteAddr   string `json:"remote_addr"`
	// InputRecorded says whether keystrokes are in the recording.
	InputRecorded bool `json:"input_recorded"`
	// Recording is the file's path relative to EXO_CAST_STORAGE_DIR; empty
	// once the retention period removed the file.
	Recording string `json:"-"`
	// RecordingAvailable says the recording can be downloaded.
	RecordingAvailable bool       `json:"recording_available"`
	RecordingBytes     int64      `json:"recording_bytes"`
	StartedAt          time.Time  `json:"started_at"`
	EndedAt            *time.Time `json:"ended_at"`
	ExitCode           *int       `json:"exit_code"`
	EndReason          string     `json:"end_reason"`
}

// ShellSessionEnd is what is known when a session ends.
type ShellSessionEnd struct {
	Pod, Container string
	EndedAt        time.Time
	ExitCode       *int
	Reason         string
	RecordingBytes int64
}

// ShellSettings are a tenant's browser-shell settings.
type ShellSettings struct {
	// RecordInput adds keystrokes ("i" events) to recordings. Off by default:
	// input holds whatever users type, passwords included.
	RecordInput bool      `json:"record_input"`
	UpdatedAt   time.Time `json:"updated_at"`
}

const shellSessionCols = `id, tenant_id, user_id, user_email, deployment_id, namespace, agent, pod, container, remote_addr,
	input_recorded, recording, recording_bytes, started_at, ended_at, exit_code, end_reason`

func scanShellSession(row rowScanner) (ShellSession, error) {
	var s ShellSession
	var input int
	var started int64
	var ended sql.NullInt64
	var exit sql.NullInt64
	err := row.Scan(&s.ID, &s.TenantID, &s.UserID, &s.UserEmail, &s.DeploymentID, &s.Namespace, &s.Agent, &s.Pod, &s.Container,
		&s.RemoteAddr, &input, &s.Recording, &s.RecordingBytes, &started, &ended, &exit, &s.EndReason)
	if err != nil {
		return s, mapErr(err)
	}
	s.InputRecorded = input != 0
	s.RecordingAvailable = s.Recording != ""
	s.StartedAt = fromMS(started)
	s.EndedAt = fromNullMS(ended)
	if exit.Valid {
		c := int(exit.Int64)
		s.ExitCode = &c
	}
	return s, nil
}

func (s *sqlStore) CreateShellSession(ctx context.Context, ss ShellSession) error {
	if ss.StartedAt.IsZero() {
		ss.StartedAt = now()
	}
	return s.insertAudited(ctx, ss.ID, `INSERT INTO shell_sessions (`+shellSessionCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, '')`,
		ss.ID, ss.TenantID, ss.UserID, ss.UserEmail, ss.DeploymentID, ss.Namespace, ss.Agent, ss.Pod, ss.Container,
		ss.RemoteAddr, shellFlag(ss.InputRecorded), ss.Recording, ss.RecordingBytes, ms(ss.StartedAt))
}

func (s *sqlStore) EndShellSession(ctx context.Context, tenantID, id string, end ShellSessionEnd) error {
	var exit sql.NullInt64
	if end.ExitCode != nil {
		exit = sql.NullInt64{Int64: int64(*end.ExitCode), Valid: true}
	}
	return s.execAudited(ctx, `UPDATE shell_sessions SET pod = ?, container = ?, ended_at = ?, exit_code = ?, end_reason = ?, recording_bytes = ?
		WHERE tenant_id = ? AND id = ?`,
		end.Pod, end.Container, ms(end.EndedAt), exit, end.Reason, end.RecordingBytes, tenantID, id)
}

func (s *sqlStore) ListShellSessions(ctx context.Context, tenantID string, p Page) ([]ShellSession, error) {
	if p.Limit <= 0 || p.Limit > 500 {
		p.Limit = 50
	}
	q := `SELECT ` + shellSessionCols + ` FROM shell_sessions WHERE tenant_id = ?`
	args := []any{tenantID}
	if p.Before != "" {
		q += ` AND id < ?`
		args = append(args, p.Before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, p.Limit)
	return queryAll(ctx, s, scanShellSession, q, args...)
}

func (s *sqlStore) GetShellSession(ctx context.Context, tenantID, id string) (ShellSession, error) {
	return scanShellSession(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+shellSessionCols+` FROM shell_sessions WHERE tenant_id = ? AND id = ?`), tenantID, id))
}

func (s *sqlStore) ExpireShellRecording(ctx context.Context, tenantID, id string) error {
	return s.execOne(ctx, s.db, `UPDATE shell_sessions SET recording = ''
		WHERE tenant_id = ? AND id = ? AND ended_at IS NOT NULL AND recording <> ''`, tenantID, id)
}

func (s *sqlStore) GetShellSettings(ctx context.Context, tenantID string) (ShellSettings, error) {
	var st ShellSettings
	var input int
	var updated int64
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT record_input, updated_at FROM tenant_shell_settings WHERE tenant_id = ?`), tenantID).Scan(&input, &updated)
	if err == sql.ErrNoRows {
		return ShellSettings{}, nil // the defaults
	}
	if err != nil {
		return st, mapErr(err)
	}
	return ShellSettings{RecordInput: input != 0, UpdatedAt: fromMS(updated)}, nil
}

func (s *sqlStore) SetShellSettings(ctx context.Context, tenantID string, st ShellSettings) (ShellSettings, error) {
	st.UpdatedAt = now()
	// INSERT ... ON CONFLICT DO UPDATE is the same statement on both dialects.
	err := s.insertAudited(ctx, "", `INSERT INTO tenant_shell_settings (tenant_id, record_input, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET record_input = excluded.record_input, updated_at = excluded.updated_at`,
		tenantID, shellFlag(st.RecordInput), ms(st.UpdatedAt))
	if err != nil {
		return ShellSettings{}, err
	}
	return st, nil
}

func shellFlag(b bool) int {
	if b {
		return 1
	}
	return 0
}
