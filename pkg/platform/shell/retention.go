package shell

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/store"
)

// startRetention sweeps the recordings at start and then every quarter of
// the retention period (at most hourly) until exo-app drains. Every replica
// sweeps; the sweep is idempotent, so they need no coordination.
func (h *Handler) startRetention() {
	h.srv.Every(min(max(h.opts.Retention/4, time.Second), time.Hour), h.sweepRecordings)
}

// sweepRecordings removes every recording file older than the retention
// period whose session ended before it, or whose session no longer exists
// (its tenant was deleted). The file decides what is looked at: a session
// still running keeps writing its file, and a session's row is only read
// once its file is old enough.
func (h *Handler) sweepRecordings(ctx context.Context) {
	cutoff := h.opts.Now().Add(-h.opts.Retention)
	removed, kept := 0, 0
	err := filepath.WalkDir(h.opts.CastDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".cast") {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		} else if err != nil {
			return err
		}
		if !info.ModTime().Before(cutoff) {
			return nil
		}
		rel, err := filepath.Rel(h.opts.CastDir, path)
		if err != nil {
			return err
		}
		tenantID, file, ok := strings.Cut(filepath.ToSlash(rel), "/")
		if !ok || strings.Contains(file, "/") {
			return nil // not a <tenant>/<session>.cast recording
		}
		if h.expireRecording(ctx, tenantID, strings.TrimSuffix(file, ".cast"), path, cutoff) {
			removed++
		} else {
			kept++
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		h.log.Error("sweep recordings", "dir", h.opts.CastDir, "err", err)
	}
	if removed > 0 {
		h.log.Info("removed recordings past their retention", "removed", removed, "retention", h.opts.Retention)
	}
}

// expireRecording removes one old recording file if its session has ended
// before cutoff or is gone, and reports whether it did.
func (h *Handler) expireRecording(ctx context.Context, tenantID, id, path string, cutoff time.Time) bool {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := h.store.GetShellSession(qctx, tenantID, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// The tenant (and with it the session row) was deleted.
	case err != nil:
		h.log.Error("sweep recordings: load session", "session", id, "err", err)
		return false
	case s.EndedAt == nil || !s.EndedAt.Before(cutoff):
		return false // running, or ended recently (its file is older than its end)
	default:
		// The row first: a download from now on answers 410 instead of
		// finding a half-removed file.
		if err := h.store.ExpireShellRecording(qctx, tenantID, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			h.log.Error("sweep recordings: expire session recording", "session", id, "err", err)
			return false
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		h.log.Error("sweep recordings: remove file", "path", path, "err", err)
		return false
	}
	return true
}
