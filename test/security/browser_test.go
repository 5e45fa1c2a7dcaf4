package security_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/exo-in-go/exo/test/browser"
)

// TestAccountPagesInChromium walks the pages behind items 1, 16 and 17 in a
// real browser against a production exo-app: sign-up confirmed by the
// e-mailed link, a single sign-on that completes by exchanging its code in
// the browser that started it, and a completion link from someone else's
// sign-in, which must not sign this browser in.
func TestAccountPagesInChromium(t *testing.T) {
	idp := startIdP(t)
	a := startApp(t, "sqlite", idp.idpEnv()...)
	b := browser.Start(t, browser.TrustCertificate(idp.srv.Certificate()))
	defer b.CheckConsole(t)

	// Sign-up: the form, "check your e-mail", then the link.
	b.Run(t, "open sign-up", chromedp.Navigate(a.url+"/signup"), chromedp.WaitVisible(chromedp.CSS(`input[name="tenant_name"]`)))
	b.Run(t, "sign up",
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "Grace Hopper"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "grace@corp.example"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.SendKeys(chromedp.CSS(`input[name="tenant_name"]`), "Compilers"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#signup-sent`)))
	b.Screenshot(t, "security-01-signup-sent")
	tok := a.mail.token(t, "grace@corp.example", "/signup/confirm")
	b.Run(t, "open the link", chromedp.Navigate(a.url+"/signup/confirm?token="+url.QueryEscape(tok)),
		chromedp.WaitVisible(chromedp.CSS(`button[type="submit"]`)))
	if loc := browser.Eval[string](t, b, `location.href`); loc != a.url+"/signup/confirm" {
		t.Fatalf("the token stays in the address bar: %s", loc)
	}
	b.Run(t, "finish signing up", chromedp.Click(chromedp.CSS(`button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS(`#create-deployment`)))
	b.Screenshot(t, "security-02-signed-up")

	// Single sign-on through the tenant's provider, members by default.
	admin := a.login("grace@corp.example")
	id, _ := a.registerIdP(admin, idp, map[string]any{"default_role_id": a.role(admin, "member")})
	idp.next(map[string]any{"sub": "ada", "email": "ada@corp.example", "email_verified": true, "name": "Ada"})
	b.Run(t, "sign out", chromedp.Evaluate[chromedp.Void](`localStorage.clear()`))
	b.Run(t, "SSO", chromedp.Navigate(a.url+"/login?sso="+admin.TenantID+"/"+id),
		chromedp.WaitVisible(chromedp.CSS(`#sso-login`)), chromedp.Click(chromedp.CSS(`#sso-login`)),
		chromedp.WaitVisible(chromedp.CSS(`#deployments-table`)))
	if u := browser.Eval[string](t, b, `location.pathname + location.hash`); u != "/deployments" {
		t.Fatalf("after SSO the browser is at %q", u)
	}
	b.Screenshot(t, "security-03-sso-signed-in")

	// Someone else's completion link opened in this browser: refused.
	idp.next(map[string]any{"sub": "mallory", "email": "mallory@corp.example", "email_verified": true})
	res, frag := newBrowser(t, idp).startSSO(a.url + "/api/v1/auth/oidc/" + admin.TenantID + "/" + id + "/login")
	if res.StatusCode != http.StatusFound || frag.Get("code") == "" {
		t.Fatalf("the attacker's own sign-in: %d %v", res.StatusCode, frag)
	}
	b.Run(t, "sign out again", chromedp.Evaluate[chromedp.Void](`localStorage.clear()`))
	b.RunWithin(t, "open the attacker's completion link", 30*time.Second,
		chromedp.Navigate(a.url+"/auth/complete#code="+url.QueryEscape(frag.Get("code"))),
		chromedp.WaitVisible(chromedp.CSS(`.auth .error`)))
	if tok := browser.Eval[string](t, b, `localStorage.getItem("exo.token") || ""`); tok != "" {
		t.Fatal("the attacker's completion link signed this browser in")
	}
	b.Screenshot(t, "security-04-foreign-completion-refused")
}
