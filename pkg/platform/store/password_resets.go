package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

func (s *sqlStore) CreatePasswordReset(ctx context.Context, pr PasswordReset, tokenHash string) error {
	_, err := s.exec(ctx, s.db, `INSERT INTO password_resets (id, user_id, token_hash, expires_at, created_at) VALUES (?, ?, ?, ?, ?)`,
		NewID(), pr.UserID, tokenHash, ms(pr.ExpiresAt), ms(now()))
	return err
}

func (s *sqlStore) PeekPasswordReset(ctx context.Context, tokenHash string, t time.Time) error {
	var id string
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT id FROM password_resets WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?`),
		tokenHash, ms(t)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrInvalidToken
	}
	return mapErr(err)
}

// ConsumePasswordReset records an audit event in every tenant the user
// belongs to (a reset concerns each of them), with the user as actor and
// target where the event leaves them empty.
func (s *sqlStore) ConsumePasswordReset(ctx context.Context, tokenHash string, t time.Time, newHash string) (string, error) {
	var userID string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var id string
		err := tx.QueryRowContext(ctx, s.rebind(`SELECT id, user_id FROM password_resets WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?`),
			tokenHash, ms(t)).Scan(&id, &userID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrInvalidToken
		} else if err != nil {
			return err
		}
		if err := s.execOne(ctx, tx, `UPDATE password_resets SET used_at = ? WHERE id = ? AND used_at IS NULL`, ms(t), id); err != nil {
			if errors.Is(err, ErrNotFound) {
				return ErrInvalidToken
			}
			return err
		}
		// A successful reset also retires every other outstanding reset link.
		if _, err := s.exec(ctx, tx, `UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL`, ms(t), userID); err != nil {
			return err
		}
		if err := s.execOne(ctx, tx, `UPDATE users SET password_hash = ?, token_generation = token_generation + 1 WHERE id = ?`, newHash, userID); err != nil {
			return err
		}
		return s.auditInEveryTenant(ctx, tx, userID)
	})
	return userID, err
}
