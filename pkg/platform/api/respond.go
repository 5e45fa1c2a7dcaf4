package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// levelAccess is the slog level of access-log lines; EXO_LOG_LEVEL=warn turns them off.
const levelAccess = slog.LevelInfo

func contextWithDeadline(r *http.Request, d time.Time) (context.Context, context.CancelFunc) {
	return context.WithDeadline(r.Context(), d)
}
