package tunnel

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// ConnectPath is where the platform serves the tunnel.
const ConnectPath = "/api/agentkube/connect"

// ConnectURL derives the tunnel URL from the platform's base URL: wss:// for
// https bases, ws:// for http ones, any base path kept (for platforms served
// under a prefix).
func ConnectURL(base string) (string, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		return "", fmt.Errorf("tunnel: base URL: %w", err)
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	case "http":
		u.Scheme = "ws"
	default:
		return "", fmt.Errorf("tunnel: base URL %q must be http or https", base)
	}
	if u.Host == "" {
		return "", fmt.Errorf("tunnel: base URL %q has no host", base)
	}
	u.Path += ConnectPath
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// HandshakeError is a refused upgrade: the platform answered with an HTTP
// status instead of switching protocols.
type HandshakeError struct {
	StatusCode int
	// RetryAfter is the platform's Retry-After (409 within the grace window).
	RetryAfter time.Duration
	Message    string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("tunnel: handshake refused: HTTP %d: %s", e.StatusCode, e.Message)
}

// Dial opens the tunnel WebSocket, presenting token as a Bearer token. The
// whole handshake (TCP, TLS, HTTP upgrade) is bounded by timeout and ctx.
func Dial(ctx context.Context, connectURL, token string, header http.Header, timeout time.Duration) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Authorization", "Bearer "+token)
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: timeout,
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
		WriteBufferPool:  writePool,
	}
	ws, resp, err := d.DialContext(ctx, connectURL, h)
	if err != nil {
		if resp != nil {
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			he := &HandshakeError{StatusCode: resp.StatusCode, Message: strings.TrimSpace(string(body))}
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				he.RetryAfter = time.Duration(s) * time.Second
			}
			return nil, he
		}
		return nil, fmt.Errorf("tunnel: dial %s: %w", connectURL, err)
	}
	return ws, nil
}

// writePool shares write buffers between connections: a buffer is only
// needed while a message is being written.
var writePool websocket.BufferPool = &sync.Pool{}
