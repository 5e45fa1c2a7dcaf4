package agentkube

import (
	"errors"
	"fmt"
	"github.com/exo-in-go/exo/pkg/platform/live"
	"strconv"
	"time"

	"github.com/exo-in-go/exo/pkg/tunnel"
)

// Options configure the tunnel endpoint. OptionsFromEnv reads them from
// EXO_TUNNEL_* variables; zero values take the defaults.
type Options struct {
	// DegradedAfter without a frame from the operator marks the deployment
	// degraded (EXO_TUNNEL_DEGRADED_AFTER, default 30s). A closed connection
	// marks it degraded at once.
	DegradedAfter time.Duration
	// OfflineAfter without a frame marks it offline: the eviction window
	// (EXO_TUNNEL_OFFLINE_AFTER, default 2m).
	OfflineAfter time.Duration
	// GraceWindow protects a fresh connection: a second connection with the
	// same deployment within this long of the first is refused (409); after
	// it the newer connection wins and the older is closed with 4001
	// (EXO_TUNNEL_GRACE_WINDOW, default 10s).
	GraceWindow time.Duration
	// HeartbeatInterval is the cadence advertised to operators in welcome
	// (EXO_TUNNEL_HEARTBEAT_INTERVAL, default 10s).
	HeartbeatInterval time.Duration
	// HandshakeTimeout bounds the wait for the operator's hello
	// (EXO_TUNNEL_HANDSHAKE_TIMEOUT, default 10s).
	HandshakeTimeout time.Duration
	// PingInterval is the WebSocket ping cadence (EXO_TUNNEL_PING_INTERVAL,
	// default 20s); a silent peer is dropped after 2.5 intervals.
	PingInterval time.Duration
	// MaxFrameBytes is the read limit per frame; larger frames close the
	// connection with 1009 (EXO_TUNNEL_MAX_FRAME_BYTES, default 1 MiB).
	MaxFrameBytes int64
	// MaxObjects bounds one deployment's view so a faulty operator cannot
	// exhaust exo-app's memory (EXO_TUNNEL_MAX_OBJECTS, default 100000).
	MaxObjects int
	// TokenRecheckInterval is how often every active connection's token is
	// looked up again, so a rotation or deletion made through another
	// replica (or whose change event was missed) closes the connection
	// within this long (EXO_TUNNEL_TOKEN_RECHECK_INTERVAL, default 1m). On
	// the replica that made the change it closes at once.
	TokenRecheckInterval time.Duration
	// MaxViewBytes is one deployment's budget for its cluster view: the
	// objects as stored after trimming, plus a fixed overhead per object.
	// Growth past it is refused, not stored ("view over budget"); the
	// operator is told and the dashboard shows it
	// (EXO_TUNNEL_MAX_VIEW_BYTES, default 16 MiB: thousands of objects).
	MaxViewBytes int64
	// Events, when set, is told each time a deployment's cluster view changes,
	// so browsers showing it refetch without polling (live.TypeCluster).
	Events live.Publisher
}

// DefaultMaxViewBytes is the default per-deployment view budget. Objects are
// stored trimmed to what the dashboard shows (tunnel.Trim), typically
// 0.5–2 KiB each, so 16 MiB holds several thousand of them.
const DefaultMaxViewBytes = 16 << 20

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.DegradedAfter, 30*time.Second)
	def(&o.OfflineAfter, 2*time.Minute)
	def(&o.GraceWindow, 10*time.Second)
	def(&o.HeartbeatInterval, 10*time.Second)
	def(&o.HandshakeTimeout, 10*time.Second)
	def(&o.PingInterval, tunnel.DefaultPingInterval)
	def(&o.TokenRecheckInterval, time.Minute)
	if o.MaxViewBytes <= 0 {
		o.MaxViewBytes = DefaultMaxViewBytes
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = tunnel.DefaultReadLimit
	}
	if o.MaxObjects <= 0 {
		o.MaxObjects = 100_000
	}
	return o
}

func (o Options) validate() error {
	if o.OfflineAfter <= o.DegradedAfter {
		return fmt.Errorf("EXO_TUNNEL_OFFLINE_AFTER (%s) must be longer than EXO_TUNNEL_DEGRADED_AFTER (%s)", o.OfflineAfter, o.DegradedAfter)
	}
	if o.HeartbeatInterval >= o.DegradedAfter {
		return fmt.Errorf("EXO_TUNNEL_HEARTBEAT_INTERVAL (%s) must be shorter than EXO_TUNNEL_DEGRADED_AFTER (%s)", o.HeartbeatInterval, o.DegradedAfter)
	}
	return nil
}

// OptionsFromEnv reads EXO_TUNNEL_* variables; every invalid value is
// reported with its variable name.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	var o Options
	var errs []error
	dur := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s: must be a positive Go duration such as 30s, got %q", name, v))
				return
			}
			*dst = d
		}
	}
	num := func(name string, set func(int64)) {
		if v := getenv(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("%s: must be a positive integer, got %q", name, v))
				return
			}
			set(n)
		}
	}
	dur("EXO_TUNNEL_DEGRADED_AFTER", &o.DegradedAfter)
	dur("EXO_TUNNEL_OFFLINE_AFTER", &o.OfflineAfter)
	dur("EXO_TUNNEL_GRACE_WINDOW", &o.GraceWindow)
	dur("EXO_TUNNEL_HEARTBEAT_INTERVAL", &o.HeartbeatInterval)
	dur("EXO_TUNNEL_HANDSHAKE_TIMEOUT", &o.HandshakeTimeout)
	dur("EXO_TUNNEL_PING_INTERVAL", &o.PingInterval)
	dur("EXO_TUNNEL_TOKEN_RECHECK_INTERVAL", &o.TokenRecheckInterval)
	num("EXO_TUNNEL_MAX_VIEW_BYTES", func(n int64) { o.MaxViewBytes = n })
	num("EXO_TUNNEL_MAX_FRAME_BYTES", func(n int64) { o.MaxFrameBytes = n })
	num("EXO_TUNNEL_MAX_OBJECTS", func(n int64) { o.MaxObjects = int(n) })
	if err := errors.Join(errs...); err != nil {
		return Options{}, err
	}
	o = o.withDefaults()
	return o, o.validate()
}
