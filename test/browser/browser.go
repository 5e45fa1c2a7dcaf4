// Package browser drives a real headless Chromium (chromedp) for the
// end-to-end suites: it fails a test on any console error or uncaught
// exception, bounds every step with a deadline and saves screenshots.
package browser

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Browser is one headless Chromium with a fresh profile, at 1280×800.
type Browser struct {
	// Ctx is the tab's context, for chromedp calls of a test's own.
	Ctx      context.Context
	shots    string
	mu       sync.Mutex
	problems []string
}

// ChromiumPath finds the Chromium that hack/install-chromium.sh installs.
func ChromiumPath(t testing.TB) string {
	for _, p := range []string{os.Getenv("EXO_CHROMIUM"), os.Getenv("CHROME_PATH"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := exec.LookPath(p); err == nil {
				return p
			}
		}
	}
	t.Fatal("Chromium not found: run hack/install-chromium.sh (or set EXO_CHROMIUM)")
	return ""
}

// Option changes how Start runs Chromium.
type Option func(*[]chromedp.ExecAllocatorOption)

// TrustCertificate makes Chromium accept TLS servers presenting cert (a
// test's own HTTPS server), and no other certificate it would refuse.
func TrustCertificate(cert *x509.Certificate) Option {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return func(opts *[]chromedp.ExecAllocatorOption) {
		*opts = append(*opts, chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(sum[:])))
	}
}

// Start runs Chromium until the test ends. Screenshots go to
// $EXO_UI_SCREENSHOTS, or a temporary directory printed in the log.
func Start(t testing.TB, options ...Option) *Browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	for _, o := range options {
		o(&opts)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })

	shots := os.Getenv("EXO_UI_SCREENSHOTS")
	if shots == "" {
		var err error
		if shots, err = os.MkdirTemp("", "exo-ui-screenshots-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", shots)
	b := &Browser{Ctx: ctx, shots: shots}
	// Listen starts the browser and the tab, so start-up is not charged to the first step.
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range ev.Args {
					if a.Description != "" {
						parts = append(parts, a.Description)
					} else {
						parts = append(parts, string(a.Value))
					}
				}
				b.problem("console." + string(ev.Type) + ": " + strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.problem(fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber, msg))
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *Browser) problem(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, s)
}

// CheckConsole fails the test for every console error or uncaught
// exception since the last check.
func (b *Browser) CheckConsole(t testing.TB) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("browser: %s", p)
	}
	b.problems = nil
}

// Run executes actions with a deadline so a missing element fails the step
// instead of hanging the suite.
func (b *Browser) Run(t testing.TB, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	b.RunWithin(t, what, 30*time.Second, actions...)
}

// RunWithin is Run with a deadline of d, for a step that waits on something
// slow (a pod starting, a run finishing).
func (b *Browser) RunWithin(t testing.TB, what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(t, what, err)
	}
}

// Value runs one action that returns a value, with the same deadline.
func Value[T any](t testing.TB, b *Browser, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail(t, what, err)
	}
	return v
}

func (b *Browser) fail(t testing.TB, what string, err error) {
	t.Helper()
	sctx, scancel := context.WithTimeout(b.Ctx, 5*time.Second)
	shot, _ := chromedp.Run(sctx, chromedp.FullScreenshot(80))
	scancel()
	if len(shot) > 0 {
		_ = os.WriteFile(filepath.Join(b.shots, "failure.jpg"), shot, 0o644)
	}
	b.CheckConsole(t)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: timed out (see failure.jpg in %s)", what, b.shots)
	}
	t.Fatalf("%s: %v", what, err)
}

// Screenshot saves the whole page as name.png at the current viewport.
func (b *Browser) Screenshot(t testing.TB, name string) {
	t.Helper()
	png := Value(t, b, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Narrow takes a screenshot at phone width and restores 1280×800.
func (b *Browser) Narrow(t testing.TB, name string) {
	t.Helper()
	b.Run(t, "narrow viewport", chromedp.EmulateViewport(390, 844))
	if w := Eval[[]int](t, b, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
		t.Errorf("%s: the page scrolls sideways at 390 px (content %d px, viewport %d px)", name, w[0], w[1])
	}
	b.Screenshot(t, name+"-narrow")
	b.Run(t, "desktop viewport", chromedp.EmulateViewport(1280, 800))
}

// Text waits for sel and returns its text.
func (b *Browser) Text(t testing.TB, sel string) string {
	t.Helper()
	b.Run(t, "wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	return Value(t, b, "read "+sel, chromedp.TextContent(chromedp.CSS(sel)))
}

// Eval evaluates js in the page.
func Eval[T any](t testing.TB, b *Browser, js string) T {
	t.Helper()
	return Value(t, b, "eval", chromedp.Evaluate[T](js))
}

// MarkPage sets a marker on window: if it is still there later, the page
// was updated in place, not reloaded.
func (b *Browser) MarkPage(t testing.TB) {
	Eval[chromedp.Void](t, b, `window.__exoNoReload = true; window.__exoShift = 0;
new PerformanceObserver((l) => { for (const e of l.getEntries()) if (!e.hadRecentInput) window.__exoShift += e.value; })
  .observe({type: "layout-shift", buffered: false}); true`)
}

// AssertNotReloaded fails the test if the page was reloaded since MarkPage.
func (b *Browser) AssertNotReloaded(t testing.TB) {
	t.Helper()
	if !Eval[bool](t, b, `window.__exoNoReload === true`) {
		t.Fatal("the page was reloaded; the update must arrive live")
	}
}

// LayoutShift is the cumulative layout shift since MarkPage.
func (b *Browser) LayoutShift(t testing.TB) float64 {
	t.Helper()
	return Eval[float64](t, b, `window.__exoShift || 0`)
}
