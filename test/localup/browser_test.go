package localup

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/exo-in-go/exo/test/browser"
)

// dashboardInBrowser uses the running system the way its welcome says: sign
// in with the printed credentials, see the seeded deployment connected and
// its agent listed from the real operator's view, and invoke the agent with
// its output streamed from the agentlet onto the page.
func dashboardInBrowser(t *testing.T, u *localUp, d *dashboard) {
	b := browser.Start(t)
	defer b.CheckConsole(t)
	email := match(t, u.welcome, `sign in\s+(\S+) / `)
	password := match(t, u.welcome, `sign in\s+\S+ / (\S+)`)
	deployment := `#deployments-table tr[data-id="` + d.deployment + `"]`

	b.Run(t, "open the UI", chromedp.Navigate(d.url+"/"), chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)))
	b.Run(t, "sign in",
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), email),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(deployment+` [data-status="connected"]`)))
	b.Screenshot(t, "localup-01-deployments")

	b.Run(t, "open the deployment", chromedp.Click(chromedp.CSS(deployment+` a`)),
		chromedp.WaitVisible(chromedp.CSS(`#agents-table tr[data-agent="default/hello"]`)))
	b.Screenshot(t, "localup-02-agents")

	b.Run(t, "open the agent", chromedp.Click(chromedp.CSS(`#agents-table tr[data-agent="default/hello"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#invoke-form textarea`)))
	b.RunWithin(t, "invoke", 90*time.Second,
		chromedp.SendKeys(chromedp.CSS(`#invoke-form textarea`), "from the browser"),
		chromedp.Click(chromedp.CSS(`#invoke-form button[type="submit"]`)),
		chromedp.Poll[chromedp.Void](`document.getElementById("invoke-status").textContent.includes("Succeeded")`, chromedp.WithPollingTimeout(90*time.Second)))
	out := b.Text(t, "#invoke-output")
	if !strings.Contains(out, "hello from") || !strings.Contains(out, "from the browser") || strings.Count(out, "from the browser") != 1 {
		t.Errorf("invoke output on the page: %q", out)
	}
	b.Screenshot(t, "localup-03-invoke")
}
