// Package connect is agentkube-manager's side of the operator tunnel
// (managed mode). A Connector is a leader-only manager.Runnable that keeps
// one outbound WebSocket to the platform: on every connect it sends a full
// snapshot of the agentkube resources and their pods from the manager's
// informer cache, then coalesced deltas and heartbeats, and it executes the
// platform's invoke_agent and ensure_pod requests. The wire protocol is
// pkg/tunnel; docs/tunnel.md describes both sides.
package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/exo-in-go/exo/pkg/tunnel"
)

// Connector is the managed-mode tunnel client.
type Connector struct {
	opts    Options
	url     string
	client  client.Client // writes (AgentRuns, Agent annotations)
	tracker *tracker
	log     logr.Logger

	generation uint64 // snapshot generation, one per connection
}

var (
	_ manager.Runnable               = (*Connector)(nil)
	_ manager.LeaderElectionRunnable = (*Connector)(nil)
)

// New builds a Connector over the manager's cache and client.
func New(mgr manager.Manager, opts Options) (*Connector, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	u, err := tunnel.ConnectURL(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log.GetSink() == nil {
		log = mgr.GetLogger().WithName("connect")
	}
	return &Connector{
		opts: opts, url: u, client: mgr.GetClient(),
		tracker: newTracker(mgr.GetCache(), opts.PodSelector),
		log:     log.WithValues("platform", opts.BaseURL, "clusterID", opts.ClusterID),
	}, nil
}

// AddToManager adds a Connector to mgr when opts.Managed is set and does
// nothing otherwise, so the manager wires it unconditionally:
//
//	opts, err := connect.OptionsFromEnv(os.Getenv)
//	...
//	if err := connect.AddToManager(mgr, opts); err != nil { ... }
func AddToManager(mgr manager.Manager, opts Options) error {
	if !opts.Managed {
		return nil
	}
	c, err := New(mgr, opts)
	if err != nil {
		return fmt.Errorf("managed mode: %w", err)
	}
	return mgr.Add(c)
}

// NeedLeaderElection makes the tunnel leader-only: the platform accepts one
// connection per deployment token, and one leader owns it.
func (c *Connector) NeedLeaderElection() bool { return true }

// Start connects and reconnects until ctx ends (shutdown or lost leadership).
func (c *Connector) Start(ctx context.Context) error {
	if err := c.tracker.start(ctx); err != nil {
		return err
	}
	defer c.tracker.stop()
	if !c.tracker.cache.WaitForCacheSync(ctx) {
		return nil // ctx ended before the cache synced
	}
	b := backoff{initial: c.opts.InitialBackoff, max: c.opts.MaxBackoff}
	for {
		connected, err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if !connected.IsZero() && time.Since(connected) >= c.opts.StableAfter {
			b.reset()
		}
		wait := b.next()
		var he *tunnel.HandshakeError
		switch {
		case errors.As(err, &he) && he.StatusCode == http.StatusUnauthorized:
			c.log.Error(err, "the platform refused the deployment token; check Secret agentkube-auth", "retryIn", wait)
		case errors.As(err, &he) && he.StatusCode == http.StatusConflict:
			wait = max(wait, he.RetryAfter)
			c.log.Info("another connection with this token is active; waiting for its grace window", "retryIn", wait)
		case tunnel.CloseCode(err) == tunnel.CloseSuperseded:
			// Another operator with the same token took over; do not fight it
			// at full speed.
			wait = max(wait, c.opts.MaxBackoff/2)
			c.log.Info("connection superseded by another operator with the same token", "retryIn", wait)
		default:
			c.log.Info("tunnel disconnected", "err", err, "retryIn", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// session runs one connection. It returns when the connection ends, with
// the time the platform welcomed it (zero if it never did).
func (c *Connector) session(ctx context.Context) (connected time.Time, err error) {
	hdr := http.Header{"X-Agentkube-Cluster-Id": {c.opts.ClusterID}, "X-Agentkube-Version": {c.opts.Version}}
	ws, err := tunnel.Dial(ctx, c.url, c.opts.Token, hdr, c.opts.HandshakeTimeout)
	if err != nil {
		return time.Time{}, err
	}
	conn := tunnel.NewConn(ws, tunnel.Options{ReadLimit: c.opts.MaxFrameBytes, PingInterval: c.opts.PingInterval})

	sctx, cancel := context.WithCancel(ctx)
	var requests sync.WaitGroup
	welcome := make(chan tunnel.Welcome, 1)
	sem := make(chan struct{}, c.opts.MaxConcurrentRequests)
	runErr := make(chan error, 1)
	go func() {
		runErr <- conn.Run(sctx, func(f tunnel.Frame) { c.handle(sctx, conn, f, welcome, sem, &requests) })
	}()
	defer func() {
		cancel()
		conn.Close(tunnel.CloseGoingAway, "operator stopping")
		if e := <-runErr; err == nil {
			err = e
		}
		requests.Wait()
		if c.opts.Shells != nil {
			// Every shell of this connection ends with it; wait so none outlives it.
			c.opts.Shells.Wait()
		}
	}()

	if err := conn.Send(sctx, tunnel.TypeHello, "hello", tunnel.Hello{ClusterID: c.opts.ClusterID, OperatorVersion: c.opts.Version}); err != nil {
		return time.Time{}, err
	}
	hs := time.NewTimer(c.opts.HandshakeTimeout)
	var w tunnel.Welcome
	select {
	case w = <-welcome:
		hs.Stop()
	case <-hs.C:
		conn.Close(tunnel.CloseHandshake, "no welcome within the handshake timeout")
		return time.Time{}, errors.New("no welcome within the handshake timeout")
	case <-conn.Done():
		hs.Stop()
		return time.Time{}, conn.Err()
	}
	connected = time.Now()
	c.log.Info("connected to the platform", "deployment", w.DeploymentID)

	c.generation++
	gen := c.generation
	if err := c.sendSnapshot(sctx, conn, gen); err != nil {
		return connected, err
	}

	interval := c.opts.HeartbeatInterval
	if p := time.Duration(w.HeartbeatIntervalSeconds * float64(time.Second)); p > 0 && p < interval {
		interval = p
	}
	heartbeat := time.NewTicker(interval)
	defer heartbeat.Stop()
	var seq uint64
	// Leading-edge coalescing: a change after a quiet period goes out at
	// once; during a burst, deltas leave at most every DeltaDelay, each
	// carrying the latest state of everything that changed meanwhile.
	flush := time.NewTimer(0)
	<-flush.C
	flushArmed := false
	var lastFlush time.Time
	for {
		select {
		case <-ctx.Done():
			return connected, nil
		case <-conn.Done():
			return connected, conn.Err()
		case <-heartbeat.C:
			seq++
			if err := conn.Send(sctx, tunnel.TypeHeartbeat, "", tunnel.Heartbeat{Seq: seq, Time: time.Now()}); err != nil {
				return connected, err
			}
		case <-c.tracker.notify:
			if !flushArmed {
				flush.Reset(max(0, c.opts.DeltaDelay-time.Since(lastFlush)))
				flushArmed = true
			}
		case <-flush.C:
			flushArmed, lastFlush = false, time.Now()
			if err := c.sendDeltas(sctx, conn, gen); err != nil {
				return connected, err
			}
		}
	}
}

func (c *Connector) handle(ctx context.Context, conn *tunnel.Conn, f tunnel.Frame, welcome chan tunnel.Welcome, sem chan struct{}, wg *sync.WaitGroup) {
	switch f.Type {
	case tunnel.TypeWelcome:
		var w tunnel.Welcome
		_ = f.Unmarshal(&w)
		select {
		case welcome <- w:
		default:
		}
	case tunnel.TypeInvokeAgent, tunnel.TypeEnsurePod:
		select {
		case sem <- struct{}{}:
		default:
			c.reply(ctx, conn, f, &tunnel.Error{Code: tunnel.CodeUnavailable, Message: "too many requests in flight"})
			return
		}
		// An output stream is registered here, before the next frame is
		// read, as the stream protocol requires.
		out := c.outputStream(conn, f)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.serveRequest(ctx, conn, f, out)
		}()
	case tunnel.TypeViewOverBudget:
		var v tunnel.ViewOverBudget
		_ = f.Unmarshal(&v)
		c.log.Error(errors.New(v.Message), "the platform refused part of the cluster view: over the deployment's budget; the dashboard shows an incomplete view",
			"budgetBytes", v.BudgetBytes, "viewBytes", v.ViewBytes, "refusedObjects", v.RefusedObjects)
	case tunnel.TypeShellOpen, tunnel.TypeShellClose:
		if c.opts.Shells != nil {
			c.opts.Shells.Handle(ctx, conn, f)
		}
	default:
		// Unknown frame types are ignored: the platform may be newer.
	}
}

// sendSnapshot sends the complete view in chunks below the frame limit.
func (c *Connector) sendSnapshot(ctx context.Context, conn *tunnel.Conn, gen uint64) error {
	c.tracker.resetDirty()
	objs, err := c.tracker.list(ctx)
	if err != nil {
		return err
	}
	parts := chunks(len(objs), func(i int) *tunnel.Object { return &objs[i] }, c.chunkBytes())
	for i, r := range parts {
		snap := tunnel.Snapshot{Generation: gen, Objects: objs[r[0]:r[1]], Final: i == len(parts)-1}
		if err := conn.Send(ctx, tunnel.TypeSnapshot, "", snap); err != nil {
			return fmt.Errorf("send snapshot: %w", err)
		}
	}
	c.log.V(1).Info("snapshot sent", "objects", len(objs), "frames", len(parts))
	return nil
}

// sendDeltas sends the latest state of every object changed since the last flush.
func (c *Connector) sendDeltas(ctx context.Context, conn *tunnel.Conn, gen uint64) error {
	dirty := c.tracker.takeDirty()
	if len(dirty) == 0 {
		return nil
	}
	changes := make([]tunnel.Change, 0, len(dirty))
	for key := range dirty {
		ch, err := c.tracker.change(ctx, key)
		if err != nil {
			return err
		}
		changes = append(changes, ch)
	}
	for _, r := range chunks(len(changes), func(i int) *tunnel.Object { return &changes[i].Object }, c.chunkBytes()) {
		if err := conn.Send(ctx, tunnel.TypeDelta, "", tunnel.Delta{Generation: gen, Changes: changes[r[0]:r[1]]}); err != nil {
			return fmt.Errorf("send delta: %w", err)
		}
	}
	return nil
}

// chunkBytes leaves room for the envelope and JSON escaping.
func (c *Connector) chunkBytes() int { return int(c.opts.MaxFrameBytes / 2) }

// chunks splits n objects into index ranges whose encoded size stays under
// limit, so every frame fits the platform's read limit. An object that alone
// exceeds the limit is sent without its body, so the view still knows it
// exists. There is always at least one (possibly empty) range.
func chunks(n int, obj func(i int) *tunnel.Object, limit int) [][2]int {
	const overhead = 256 // keys, kind, uid, resourceVersion, JSON punctuation
	var out [][2]int
	start, size := 0, 0
	for i := range n {
		o := obj(i)
		sz := len(o.Object) + len(o.Name) + len(o.Namespace) + overhead
		if sz > limit {
			o.Object = nil
			sz = len(o.Name) + len(o.Namespace) + overhead
		}
		if size+sz > limit && i > start {
			out = append(out, [2]int{start, i})
			start, size = i, 0
		}
		size += sz
	}
	return append(out, [2]int{start, n})
}
