// Package operator_test runs the attacks of docs/security.md that go through the
// operator tunnel and the browser shell against a real exo-app process, on
// SQLite and PostgreSQL, with a real operator connection: a fake operator
// built on pkg/tunnel that speaks the real protocol (it pushes whatever
// objects an attacker likes and serves shells from memory), and for item 23
// the real connector of pkg/connect against a real kube-apiserver.
package operator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/pkg/shellexec"
	"github.com/exo-in-go/exo/pkg/shellexec/protocol"
	"github.com/exo-in-go/exo/pkg/tunnel"
	"github.com/exo-in-go/exo/test/ports"
	"github.com/exo-in-go/exo/test/procs"
)

// app is one exo-app process.
type app struct {
	url   string
	child *procs.Child
	inbox <-chan platformtest.Mail // e-mails exo-app sent (sign-up confirmations, invitations)
}

// startApp runs exo-app on backend with the test's settings plus extra.
func startApp(t *testing.T, backend string, extra map[string]string) *app {
	t.Helper()
	bin := procs.Build(t, "./cmd/exo-app")
	port := ports.Free(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	vars := platformtest.Env(t, base, backend, map[string]string{
		"EXO_PORT":      fmt.Sprint(port),
		"EXO_LOG_LEVEL": "info",
	})
	smtpEnv, inbox := mailSink(t)
	for k, v := range smtpEnv {
		vars[k] = v
	}
	for k, v := range extra {
		vars[k] = v
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	a := &app{url: base, child: procs.Start(t, "exo-app-"+backend, env, filepath.Join(bin, "exo-app")), inbox: inbox}
	if err := a.child.WaitHTTP(base+"/api/health", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	return a
}

// call makes an API request and returns the status and body.
func (a *app) call(t testing.TB, method, path, token string, body any, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	r := platformtest.Call(t, apiClient, method, a.url+path, token, body, hdr...)
	return r.Status, r.Body, r.Header
}

var apiClient = &http.Client{Timeout: 30 * time.Second}

// must makes a request that has to answer want and decodes its body into out.
func (a *app) must(t testing.TB, want int, method, path, token string, body, out any, hdr ...string) {
	t.Helper()
	st, b, _ := a.call(t, method, path, token, body, hdr...)
	if st != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// user is a signed-up user: the admin of a fresh tenant.
type user struct {
	email, token, tenantID, userID string
}

func (a *app) signup(t testing.TB, email string) user {
	t.Helper()
	var out struct {
		Token    string `json:"token"`
		TenantID string `json:"tenant_id"`
	}
	st, b, _ := a.call(t, "POST", "/api/v1/auth/signup", "", map[string]string{
		"email": email, "password": "correct horse battery staple", "tenant_name": "T " + email,
	})
	switch st {
	case http.StatusCreated:
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
	case http.StatusAccepted:
		// Sign-up is confirmed through the link e-mailed to the address.
		a.must(t, http.StatusCreated, "POST", "/api/v1/auth/signup/confirm", "", map[string]string{"token": a.mailedToken(t, email)}, &out)
	default:
		t.Fatalf("signup %s: %d %s", email, st, b)
	}
	if out.Token == "" {
		t.Fatalf("signup %s: no token", email)
	}
	var me struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	a.must(t, http.StatusOK, "GET", "/api/v1/auth/me", out.Token, nil, &me)
	return user{email: email, token: out.Token, tenantID: out.TenantID, userID: me.User.ID}
}

// deployment creates a deployment and returns its id and token.
func (a *app) deployment(t testing.TB, u user, name string) (id, token string) {
	t.Helper()
	var out struct {
		Deployment struct{ ID string }
		Token      string
	}
	a.must(t, http.StatusCreated, "POST", "/api/v1/deployments", u.token, map[string]string{"name": name}, &out)
	return out.Deployment.ID, out.Token
}

// clusterView is the part of GET /api/v1/deployments/{id}/cluster the tests read.
type clusterView struct {
	Status     string          `json:"status"`
	Connected  bool            `json:"connected"`
	Synced     bool            `json:"synced"`
	OverBudget bool            `json:"over_budget"`
	Detail     string          `json:"detail"`
	ViewBytes  int64           `json:"view_bytes"`
	Objects    []tunnel.Object `json:"objects"`
}

func (a *app) cluster(t testing.TB, u user, depID string) clusterView {
	t.Helper()
	var v clusterView
	a.must(t, http.StatusOK, "GET", "/api/v1/deployments/"+depID+"/cluster", u.token, nil, &v)
	return v
}

// operator is a fake operator: a real tunnel connection that pushes the
// objects a test gives it and serves shells from memory (an echo terminal).
type operator struct {
	t    testing.TB
	conn *tunnel.Conn
	done chan struct{}
	err  error
	gen  uint64

	mu     sync.Mutex
	frames []tunnel.Frame // control frames received (besides shells)
	shells map[string]*fakeShell
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

type fakeShell struct {
	stream *tunnel.Stream
	closed chan protocol.Close // the platform's shell_close on the control stream
}

var errRefused = errors.New("refused")

// dialOperator connects with token, says hello and waits for welcome; an
// error is returned when the platform refuses the connection.
func dialOperator(t testing.TB, a *app, token string) (*operator, error) {
	t.Helper()
	u, err := tunnel.ConnectURL(a.url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ws, err := tunnel.Dial(ctx, u, token, http.Header{"X-Agentkube-Cluster-Id": {"attacker"}}, 10*time.Second)
	if err != nil {
		cancel()
		return nil, err
	}
	// A large read limit also lets the attacker send frames over the
	// platform's limit (Conn refuses to send frames over its own).
	o := &operator{t: t, conn: tunnel.NewConn(ws, tunnel.Options{ReadLimit: 8 << 20}), done: make(chan struct{}), shells: map[string]*fakeShell{}, cancel: cancel}
	welcome := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(o.done)
		o.err = o.conn.Run(ctx, func(f tunnel.Frame) {
			if f.Type == tunnel.TypeWelcome {
				once.Do(func() { close(welcome) })
			}
			o.handle(ctx, f)
		})
	}()
	t.Cleanup(o.close)
	if err := o.conn.Send(ctx, tunnel.TypeHello, "hello", tunnel.Hello{ClusterID: "attacker", OperatorVersion: "fake"}); err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	select {
	case <-welcome:
	case <-o.done:
		return nil, fmt.Errorf("%w: closed before welcome: %v", errRefused, o.err)
	case <-time.After(10 * time.Second):
		return nil, errors.New("no welcome")
	}
	return o, nil
}

func (o *operator) close() {
	o.conn.Close(tunnel.CloseNormal, "test done")
	<-o.done
	o.cancel()
	o.wg.Wait()
}

// closed waits for the platform to close the connection and returns its code.
func (o *operator) closed(d time.Duration) (int, bool) {
	select {
	case <-o.done:
		return tunnel.CloseCode(o.err), true
	case <-time.After(d):
		return 0, false
	}
}

func (o *operator) handle(ctx context.Context, f tunnel.Frame) {
	switch f.Type {
	case tunnel.TypeShellOpen:
		var op protocol.Open
		if err := f.Unmarshal(&op); err != nil {
			return
		}
		// Registered here, on the reading goroutine, as the protocol requires.
		s, err := o.conn.OpenStream(op.Stream)
		if err != nil {
			return
		}
		sh := &fakeShell{stream: s, closed: make(chan protocol.Close, 1)}
		o.mu.Lock()
		o.shells[op.GrantID] = sh
		o.mu.Unlock()
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			o.serveShell(ctx, op, sh)
		}()
	case tunnel.TypeShellClose:
		var c protocol.Close
		_ = f.Unmarshal(&c)
		o.mu.Lock()
		sh := o.shells[f.ID]
		o.mu.Unlock()
		if sh != nil {
			select {
			case sh.closed <- c:
			default:
			}
		}
	default:
		o.mu.Lock()
		o.frames = append(o.frames, f)
		o.mu.Unlock()
	}
}

// serveShell is an echo terminal: it starts, echoes input, and ends when
// the platform asks (or the stream goes away).
func (o *operator) serveShell(ctx context.Context, op protocol.Open, sh *fakeShell) {
	if err := sh.stream.Send(ctx, protocol.TypeShellStarted, op.GrantID, protocol.Started{Pod: op.Agent, Container: shellexec.DefaultContainer}); err != nil {
		return
	}
	in := make(chan []byte)
	go func() {
		defer close(in)
		for {
			f, err := sh.stream.Recv(ctx)
			if err != nil {
				return
			}
			if f.Type == tunnel.TypeShellInput {
				var d protocol.Data
				if f.Unmarshal(&d) == nil {
					select {
					case in <- d.Data:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	for {
		select {
		case d, ok := <-in:
			if !ok {
				return
			}
			if err := sh.stream.Send(ctx, tunnel.TypeShellOutput, "", protocol.Data{Data: d}); err != nil {
				return
			}
		case <-sh.closed:
			code := 0
			_ = sh.stream.Send(ctx, tunnel.TypeShellClose, op.GrantID, protocol.Close{ExitCode: &code})
			for range in { // drain until the platform resets the stream
			}
			return
		}
	}
}

// received returns the control frames of type typ received so far.
func (o *operator) received(typ string) []tunnel.Frame {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []tunnel.Frame
	for _, f := range o.frames {
		if f.Type == typ {
			out = append(out, f)
		}
	}
	return out
}

// snapshot sends objs as one complete snapshot of a new generation.
func (o *operator) snapshot(objs ...tunnel.Object) error {
	o.gen++
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return o.conn.Send(ctx, tunnel.TypeSnapshot, "", tunnel.Snapshot{Generation: o.gen, Objects: objs, Final: true})
}

// delta sends upserts of objs in the current generation.
func (o *operator) delta(objs ...tunnel.Object) error {
	ch := make([]tunnel.Change, len(objs))
	for i, obj := range objs {
		ch[i] = tunnel.Change{Op: tunnel.OpUpsert, Object: obj}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return o.conn.Send(ctx, tunnel.TypeDelta, "", tunnel.Delta{Generation: o.gen, Changes: ch})
}

// shellClient is a browser's shell WebSocket.
type shellClient struct {
	ws *websocket.Conn
}

// openShell asks for a grant and redeems it as a browser would.
func (a *app) openShell(t testing.TB, u user, depID, ns, agent string) *shellClient {
	t.Helper()
	var g struct {
		GrantID string `json:"grant_id"`
		WSURL   string `json:"ws_url"`
	}
	a.must(t, http.StatusCreated, "POST", "/api/v1/deployments/"+depID+"/agents/"+ns+"/"+agent+"/shell", u.token, map[string]int{"cols": 80, "rows": 24}, &g)
	d := websocket.Dialer{Subprotocols: []string{"exo-shell.v1", "exo-auth." + u.token}, HandshakeTimeout: 10 * time.Second}
	ws, res, err := d.Dial(g.WSURL, http.Header{"Origin": {a.url}})
	if err != nil {
		st := 0
		if res != nil {
			st = res.StatusCode
		}
		t.Fatalf("open shell: %v (status %d)", err, st)
	}
	t.Cleanup(func() { ws.Close() })
	return &shellClient{ws: ws}
}

// serverMsg is a JSON control message of the shell WebSocket.
type serverMsg struct {
	Type     string `json:"type"`
	Reason   string `json:"reason"`
	ExitCode *int   `json:"exit_code"`
	Session  string `json:"session_id"`
}

// next reads until a control message of type typ (returning it), the
// connection's close (returning its close error) or the deadline.
func (c *shellClient) next(t testing.TB, typ string, d time.Duration) (serverMsg, error) {
	t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(d))
	for {
		mt, b, err := c.ws.ReadMessage()
		if err != nil {
			return serverMsg{}, err
		}
		if mt != websocket.TextMessage {
			continue
		}
		var m serverMsg
		if json.Unmarshal(b, &m) == nil && m.Type == typ {
			return m, nil
		}
	}
}

// echo types line and waits for it to come back.
func (c *shellClient) echo(t testing.TB, line string) {
	t.Helper()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte(line)); err != nil {
		t.Fatalf("shell input: %v", err)
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got strings.Builder
	for !strings.Contains(got.String(), line) {
		mt, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for echo of %q: %v (got %q)", line, err, got.String())
		}
		if mt == websocket.BinaryMessage {
			got.Write(b)
		}
	}
}

// mailSink starts the test SMTP server and returns the EXO_SMTP_* variables
// that point exo-app at it, and its inbox.
func mailSink(t *testing.T) (map[string]string, <-chan platformtest.Mail) {
	t.Helper()
	addr, inbox := platformtest.StartSMTP(t)
	return map[string]string{"EXO_SMTP_ADDR": addr, "EXO_SMTP_FROM": "exo@example.test", "EXO_SMTP_STARTTLS": "false"}, inbox
}

// mailedToken reads the next e-mail and returns the token of its link.
func (a *app) mailedToken(t testing.TB, to string) string {
	t.Helper()
	var msg string
	select {
	case m := <-a.inbox:
		msg = m.Data
	case <-time.After(20 * time.Second):
		t.Fatalf("no e-mail for %s", to)
	}
	m := linkToken.FindStringSubmatch(strings.ReplaceAll(msg, "=\r\n", ""))
	if m == nil {
		t.Fatalf("no link in the e-mail to %s:\n%s", to, msg)
	}
	tok, err := url.QueryUnescape(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var linkToken = regexp.MustCompile(`token=([A-Za-z0-9_\-%.=]+)`)

// invite makes email a member of admin's tenant with roleID ("" for the
// default) through the invitation e-mail, and signs them in.
func (a *app) invite(t testing.TB, admin user, email, roleID string) user {
	t.Helper()
	body := map[string]string{"email": email}
	if roleID != "" {
		body["role_id"] = roleID
	}
	a.must(t, http.StatusCreated, "POST", "/api/v1/invitations", admin.token, body, nil)
	tok := a.mailedToken(t, email)
	var out struct {
		Token    string `json:"token"`
		TenantID string `json:"tenant_id"`
	}
	a.must(t, http.StatusOK, "POST", "/api/v1/auth/invitations/accept", "", map[string]string{"token": tok, "password": "correct horse battery staple"}, &out)
	var me struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	a.must(t, http.StatusOK, "GET", "/api/v1/auth/me", out.Token, nil, &me, "X-Tenant-ID", admin.tenantID)
	return user{email: email, token: out.Token, tenantID: admin.tenantID, userID: me.User.ID}
}
