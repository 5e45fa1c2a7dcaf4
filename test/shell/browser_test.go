//go:build linux

package shell

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/exo-in-go/exo/pkg/platform/shell"
	"github.com/exo-in-go/exo/test/browser"
	"github.com/exo-in-go/exo/test/poll"
)

// Real Chromium logs in, opens the terminal page on the agent, types
// `echo hello`, reads `hello` back from xterm.js, resizes the window (the
// PTY follows), exits, and plays the session's recording back in the page.
func TestBrowserShell(t *testing.T) {
	f := newFixture(t, shell.Options{})
	b := browser.Start(t)
	// Any console error or uncaught exception of the terminal or replay page fails the test.
	defer b.CheckConsole(t)
	b.Run(t, "window size", chromedp.EmulateViewport(1000, 700))
	ctx, cancel := context.WithTimeout(b.Ctx, 3*time.Minute)
	defer cancel()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	until := func(expr string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(time.Minute))(ctx, tg)
			return err
		})
	}

	// Log in through the API from the page, and keep the session where the
	// dashboard keeps it (localStorage, see pkg/platform/ui/static/js/api.js).
	login := fmt.Sprintf(`fetch("/api/v1/auth/login", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({email: %q, password: "correct-horse-battery-staple"})})
		.then(r => r.json()).then(j => { localStorage.setItem("exo.token", j.token);
		localStorage.setItem("exo.expires_at", j.expires_at); localStorage.setItem("exo.tenant", j.tenant_id); return true; })`, f.alice.email)
	page := f.p.url + "/shell/terminal.html?" + url.Values{"deployment": {f.dep}, "namespace": {cluster.namespace}, "agent": {cluster.agent}}.Encode()
	do("open the origin", chromedp.Navigate(f.p.url+"/shell/shell.css"))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](login, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatalf("log in: %v", err)
	}
	do("open the terminal", chromedp.Navigate(page), until(`window.exoShell !== undefined && exoShell.status === "open"`))
	typeLine(ctx, t, "echo hello")
	waitText(ctx, t, `exoShell.text()`, regexp.MustCompile(`(?m)^hello\s*$`))

	// Resize the window: the fit addon resizes the terminal, the page sends
	// the new size, and the PTY reports it.
	do("resize", chromedp.EmulateViewport(1400, 900), until(`exoShell.term.cols > 130`))
	cols := evalJS[int](ctx, t, `exoShell.term.cols`)
	rows := evalJS[int](ctx, t, `exoShell.term.rows`)
	typeLine(ctx, t, "stty size")
	waitText(ctx, t, `exoShell.text()`, regexp.MustCompile(fmt.Sprintf(`(?m)^%d %d\s*$`, rows, cols)))

	typeLine(ctx, t, "exit")
	do("exit", until(`exoShell.exit !== null`))
	if code := evalJS[int](ctx, t, `exoShell.exit.exit_code`); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	sessionID := evalJS[string](ctx, t, `exoShell.sessionId`)
	poll.UntilTrue(t, "the session is stored as ended", 30*time.Second, func() bool { return f.p.shell.Active() == 0 })

	// The recording plays back in the page.
	do("open the recording", chromedp.Navigate(f.p.url+"/shell/replay.html?session="+url.QueryEscape(sessionID)),
		until(`window.exoReplay !== undefined && exoReplay.mode !== null`))
	t.Logf("recording played with %s", evalJS[string](ctx, t, `exoReplay.mode`))
	// asciinema-player renders rows padded to the terminal width without line
	// breaks, so the output is found as the line that follows the typed command.
	waitText(ctx, t, `exoReplay.text()`, regexp.MustCompile(`echo hello\s+hello\s`))
}

// typeLine types text into the focused terminal and presses Enter, the way
// an input method does: the text as one insertion, Enter as a key press.
// (chromedp.KeyEvent sends keyDown and char events, which xterm.js would
// both turn into input.)
func typeLine(ctx context.Context, t *testing.T, text string) {
	t.Helper()
	if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: text}); err != nil {
		t.Fatalf("type %q: %v", text, err)
	}
	for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
		if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, input.DispatchKeyEventParams{
			Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13,
		}); err != nil {
			t.Fatalf("press Enter: %v", err)
		}
	}
}

func evalJS[T any](ctx context.Context, t *testing.T, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitText polls a JavaScript expression returning text until re matches.
func waitText(ctx context.Context, t *testing.T, expr string, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var text string
	for time.Now().Before(deadline) {
		text = evalJS[string](ctx, t, expr)
		if re.MatchString(text) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never matched %s; text:\n%s", expr, re, strings.TrimSpace(text))
}
