// Package ui serves the embedded web UI: hand-written HTML, CSS and ES
// modules under static/, no build step and no Node toolchain. It is a
// single-page app: every path that is not a file (/deployments,
// /auth/complete#token=…) gets index.html and the client-side router in
// static/js/app.js renders the page. The invitation and password-reset
// links of e-mails open small documents of their own (invite.html,
// reset.html). docs/ui.md
// describes the pages and how they use the API.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"time"
)

//go:embed static
var static embed.FS

// contentSecurityPolicy allows only same-origin scripts, styles and
// connections: no inline script, no eval, no third-party origin. The UI
// builds the DOM with createElement/textContent, so API data can never
// become markup.
const contentSecurityPolicy = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type asset struct {
	name string
	data []byte
	etag string
}

// Handler serves the UI. Assets carry a content-hash ETag and must be
// revalidated (Cache-Control: no-cache), so an upgraded exo-app is picked
// up at the next load while unchanged files cost a 304.
func Handler() http.Handler {
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	assets := map[string]asset{}
	_ = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		assets["/"+p] = asset{name: path.Base(p), data: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	index := assets["/index.html"]
	// The pages e-mail links point at are documents of their own.
	documents := map[string]asset{
		"/invite/accept":  assets["/invite.html"],
		"/reset-password": assets["/reset.html"],
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// Invitation and reset links carry a token in the query string: never leak it in Referer.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Cache-Control", "no-cache")
		p := path.Clean("/" + r.URL.Path)
		a, ok := assets[p]
		if d, isDoc := documents[p]; isDoc {
			a, ok = d, true
		}
		switch {
		case ok && p != "/index.html":
		case p == "/" || p == "/index.html" || path.Ext(p) == "":
			// A client-side route: the app shell.
			a = index
		default:
			// A missing asset is a 404, not the app shell: a stale module
			// URL must fail loudly instead of parsing HTML as JavaScript.
			http.NotFound(w, r)
			return
		}
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.data))
	})
}
