// Package ui serves the embedded web UI. Until the UI issue lands this is a
// placeholder page plus the two confirm pages that e-mail links point at;
// they consume the single-use token with a POST so that link scanners and
// prefetchers, which only GET, cannot burn it.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// Handler serves the UI. Unknown non-API paths fall back to index.html so a
// single-page app can own client-side routes.
func Handler() http.Handler {
	root, _ := fs.Sub(static, "static")
	files := http.FileServerFS(root)
	pages := map[string]string{
		"/invite/accept":  "/invite.html",
		"/reset-password": "/reset.html",
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// Confirm pages carry a token in the query string: never leak it in Referer.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
		p := path.Clean("/" + r.URL.Path)
		if target, ok := pages[p]; ok {
			r2 := r.Clone(r.Context())
			r2.URL.Path = target
			files.ServeHTTP(w, r2)
			return
		}
		if p != "/" && !strings.HasPrefix(p, "/api/") {
			if _, err := fs.Stat(root, strings.TrimPrefix(p, "/")); err != nil {
				r2 := r.Clone(r.Context())
				r2.URL.Path = "/"
				files.ServeHTTP(w, r2)
				return
			}
		}
		files.ServeHTTP(w, r)
	})
}
