// Package config is the contract between the agentkube manager, which writes
// the agentlet's environment into every Agent pod, and the agentlet, which
// reads it. The manager imports the Env* names from here so both sides can
// never drift apart; docs/agentlet.md describes each variable.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/exo-in-go/exo/pkg/cmd/options"
)

// Environment variables read by the agentlet.
const (
	EnvListenAddress      = "AGENTLET_LISTEN_ADDRESS"       // host:port, default ":8090"
	EnvToken              = "AGENTLET_TOKEN"                // bearer token callers must present
	EnvTokenFile          = "AGENTLET_TOKEN_FILE"           // file holding the token (a mounted Secret)
	EnvTLSCertFile        = "AGENTLET_TLS_CERT_FILE"        // optional: serve HTTPS with this certificate
	EnvTLSKeyFile         = "AGENTLET_TLS_KEY_FILE"         // optional: key for EnvTLSCertFile
	EnvRuntime            = "AGENTLET_RUNTIME"              // one of the Runtime values
	EnvGoal               = "AGENTLET_GOAL"                 // the Agent's standing goal
	EnvModel              = "AGENTLET_MODEL"                // model name, e.g. "claude-sonnet-4-5"
	EnvModelProvider      = "AGENTLET_MODEL_PROVIDER"       // model provider, e.g. "anthropic"
	EnvModelBaseURL       = "AGENTLET_MODEL_BASE_URL"       // root URL of the model API, e.g. "http://llm-gateway:8080"
	EnvTools              = "AGENTLET_TOOLS"                // JSON array of tool names
	EnvCommand            = "AGENTLET_COMMAND"              // JSON array: Custom runtime's command and leading args
	EnvArgs               = "AGENTLET_ARGS"                 // JSON array: extra args appended for every run
	EnvAttachCommand      = "AGENTLET_ATTACH_COMMAND"       // JSON array: command attach starts in a PTY
	EnvWorkDir            = "AGENTLET_WORKDIR"              // working directory of the runtime
	EnvDataDir            = "AGENTLET_DATA_DIR"             // output and recordings, default /var/lib/agentlet
	EnvRecordInput        = "AGENTLET_RECORD_INPUT"         // "true" records keystrokes ("i" events)
	EnvMaxInputBytes      = "AGENTLET_MAX_INPUT_BYTES"      // request body limit, default 1 MiB
	EnvMaxOutputBytes     = "AGENTLET_MAX_OUTPUT_BYTES"     // output kept on disk per run, default 64 MiB
	EnvMaxRecordingBytes  = "AGENTLET_MAX_RECORDING_BYTES"  // recording size per run/session, default 64 MiB
	EnvRunHistory         = "AGENTLET_RUN_HISTORY"          // finished runs kept on disk, default 20
	EnvDefaultTimeout     = "AGENTLET_DEFAULT_TIMEOUT"      // Go duration for runs without timeoutSeconds, default 1h
	EnvMaxTimeout         = "AGENTLET_MAX_TIMEOUT"          // upper bound for timeoutSeconds, default 24h
	EnvKillGracePeriod    = "AGENTLET_KILL_GRACE_PERIOD"    // SIGTERM→SIGKILL delay, default 5s
	EnvMaxAttachSessions  = "AGENTLET_MAX_ATTACH_SESSIONS"  // concurrent attach sessions, default 4
	EnvLogLevel           = "AGENTLET_LOG_LEVEL"            // debug, info, warn, error
	EnvAttachPingInterval = "AGENTLET_ATTACH_PING_INTERVAL" // WebSocket ping period, default 20s
)

// EnvPrefix marks the agentlet's own variables. They are removed from the
// runtime's environment so the CLI never sees the agentlet's token.
const EnvPrefix = "AGENTLET_"

// PortName is the container port name the manager gives the agentlet's
// listener, and DefaultPort its number.
const (
	PortName    = "agentlet"
	DefaultPort = 8090
)

// Runtime names an agent CLI; the values match the Agent's spec.runtime.
type Runtime string

const (
	RuntimeClaudeCode Runtime = "ClaudeCode"
	RuntimeCodex      Runtime = "Codex"
	RuntimeOpenCode   Runtime = "OpenCode"
	RuntimeAider      Runtime = "Aider"
	RuntimeCline      Runtime = "Cline"
	RuntimeGemini     Runtime = "Gemini"
	RuntimeGoose      Runtime = "Goose"
	RuntimeCursor     Runtime = "Cursor"
	RuntimeCustom     Runtime = "Custom"
)

// Runtimes lists every supported runtime.
var Runtimes = []Runtime{
	RuntimeClaudeCode, RuntimeCodex, RuntimeOpenCode, RuntimeGemini, RuntimeAider,
	RuntimeCline, RuntimeGoose, RuntimeCursor, RuntimeCustom,
}

// Config is the agentlet's resolved configuration.
type Config struct {
	ListenAddress string
	Token         string
	TLSCertFile   string
	TLSKeyFile    string

	Runtime       Runtime
	Goal          string
	Model         string
	ModelProvider string
	ModelBaseURL  string
	Tools         []string
	Command       []string
	Args          []string
	AttachCommand []string
	WorkDir       string

	DataDir           string
	RecordInput       bool
	MaxInputBytes     int64
	MaxOutputBytes    int64
	MaxRecordingBytes int64
	RunHistory        int
	DefaultTimeout    time.Duration
	MaxTimeout        time.Duration
	KillGracePeriod   time.Duration
	MaxAttachSessions int
	AttachPingPeriod  time.Duration
	LogLevel          string
}

// Default returns the configuration used for anything the environment does
// not set.
func Default() Config {
	return Config{
		ListenAddress:     fmt.Sprintf(":%d", DefaultPort),
		Runtime:           RuntimeCustom,
		DataDir:           "/var/lib/agentlet",
		MaxInputBytes:     1 << 20,
		MaxOutputBytes:    64 << 20,
		MaxRecordingBytes: 64 << 20,
		RunHistory:        20,
		DefaultTimeout:    time.Hour,
		MaxTimeout:        24 * time.Hour,
		KillGracePeriod:   5 * time.Second,
		MaxAttachSessions: 4,
		AttachPingPeriod:  20 * time.Second,
		LogLevel:          "info",
	}
}

// NewSettings is the agentlet's configuration table: every setting a flag
// whose variable is the Env* name (--data-dir ⇔ AGENTLET_DATA_DIR), registered
// over c's values. TokenFile is read by Load.
func NewSettings(c *Config) (s *options.Set, tokenFile *string) {
	s = options.New("agentlet", EnvPrefix)
	s.Description = "agentlet: runs an Agent's runtime CLI and serves the manager its API (docs/agentlet.md)."
	fs := s.Flags()
	fs.StringVar(&c.ListenAddress, "listen-address", c.ListenAddress, "address to serve the API on; the container port is named "+PortName)
	fs.StringVar(&c.Token, "token", c.Token, "bearer token every API call must present")
	tokenFile = fs.String("token-file", "", "file holding the token (a mounted Secret); wins over --token")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "serve HTTPS (TLS 1.3 only) with this certificate, reloaded when it changes; with --tls-key-file")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", c.TLSKeyFile, "key of --tls-cert-file")
	fs.StringVar((*string)(&c.Runtime), "runtime", string(c.Runtime), "agent runtime: ClaudeCode, Codex, OpenCode, Gemini, Aider, Cline, Goose, Cursor or Custom")
	fs.StringVar(&c.Goal, "goal", c.Goal, "the Agent's goal, combined with each run's input")
	fs.StringVar(&c.Model, "model", c.Model, "model name, for runtimes that take one")
	fs.StringVar(&c.ModelProvider, "model-provider", c.ModelProvider, "model provider, for runtimes that take one")
	fs.StringVar(&c.ModelBaseURL, "model-base-url", c.ModelBaseURL, "root URL of the model API (http or https); each runtime is pointed at it the way it takes one")
	fs.Var((*jsonList)(&c.Tools), "tools", "JSON array of tool names")
	fs.Var((*jsonList)(&c.Command), "command", "JSON array: the Custom runtime's command (required for Custom)")
	fs.Var((*jsonList)(&c.Args), "args", "JSON array appended to the Custom command for every run")
	fs.Var((*jsonList)(&c.AttachCommand), "attach-command", "JSON array: what attach runs in its PTY (default per runtime)")
	fs.StringVar(&c.WorkDir, "workdir", c.WorkDir, "working directory of runs and attach sessions (default the agentlet's)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for output, recordings and run files")
	fs.BoolVar(&c.RecordInput, "record-input", c.RecordInput, "record keystrokes as \"i\" events (input holds passwords and tokens)")
	fs.Int64Var(&c.MaxInputBytes, "max-input-bytes", c.MaxInputBytes, "largest POST /v1/runs body; larger is 413")
	fs.Int64Var(&c.MaxOutputBytes, "max-output-bytes", c.MaxOutputBytes, "output kept on disk per run (the newest bytes)")
	fs.Int64Var(&c.MaxRecordingBytes, "max-recording-bytes", c.MaxRecordingBytes, "size bound of each recording")
	fs.IntVar(&c.RunHistory, "run-history", c.RunHistory, "finished runs kept on disk")
	fs.DurationVar(&c.DefaultTimeout, "default-timeout", c.DefaultTimeout, "timeout of runs that do not set timeoutSeconds")
	fs.DurationVar(&c.MaxTimeout, "max-timeout", c.MaxTimeout, "largest accepted timeoutSeconds; more is 422")
	fs.DurationVar(&c.KillGracePeriod, "kill-grace-period", c.KillGracePeriod, "time between SIGTERM (SIGHUP for attach) and SIGKILL")
	fs.IntVar(&c.MaxAttachSessions, "max-attach-sessions", c.MaxAttachSessions, "concurrent attach sessions; more is 429")
	fs.DurationVar(&c.AttachPingPeriod, "attach-ping-interval", c.AttachPingPeriod, "WebSocket ping period; a peer silent for 3 periods is dropped")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	return s, tokenFile
}

// Load builds a Config from Default, the AGENTLET_* variables (through
// lookup, os.LookupEnv in production) and args, the command line winning. It
// reads the token file when one is named. Every malformed value is reported
// at once; --help prints the table to help and returns pflag.ErrHelp.
func Load(args []string, lookup func(string) (string, bool), help io.Writer) (Config, error) {
	c := Default()
	s, tokenFile := NewSettings(&c)
	s.Output = help
	errs := []error{s.Parse(args, lookup)}
	if errors.Is(errs[0], pflag.ErrHelp) {
		return Config{}, errs[0]
	}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: read token: %w", EnvTokenFile, err))
		} else {
			c.Token = strings.TrimSpace(string(b))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// FromEnv is Load without a command line.
func FromEnv(lookup func(string) (string, bool)) (Config, error) {
	return Load(nil, lookup, io.Discard)
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Token == "" {
		// Refusing to start is the only safe answer: an agentlet without a
		// token would run commands for anyone who can reach the pod IP.
		errs = append(errs, fmt.Errorf("a token is required: set %s or %s", EnvToken, EnvTokenFile))
	}
	if !c.Runtime.Known() {
		errs = append(errs, fmt.Errorf("%s: unknown runtime %q (want one of %v)", EnvRuntime, c.Runtime, Runtimes))
	}
	if c.Runtime == RuntimeCustom && len(c.Command) == 0 {
		errs = append(errs, fmt.Errorf("%s: the Custom runtime needs a command", EnvCommand))
	}
	if err := validBaseURL(c.ModelBaseURL); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvModelBaseURL, err))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, fmt.Errorf("%s and %s must be set together", EnvTLSCertFile, EnvTLSKeyFile))
	}
	if c.DataDir == "" {
		errs = append(errs, fmt.Errorf("%s must not be empty", EnvDataDir))
	}
	for name, v := range map[string]int64{
		EnvMaxInputBytes:      c.MaxInputBytes,
		EnvMaxOutputBytes:     c.MaxOutputBytes,
		EnvMaxRecordingBytes:  c.MaxRecordingBytes,
		EnvRunHistory:         int64(c.RunHistory),
		EnvMaxAttachSessions:  int64(c.MaxAttachSessions),
		EnvDefaultTimeout:     int64(c.DefaultTimeout),
		EnvMaxTimeout:         int64(c.MaxTimeout),
		EnvAttachPingInterval: int64(c.AttachPingPeriod),
	} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", name))
		}
	}
	if c.KillGracePeriod < 0 {
		errs = append(errs, fmt.Errorf("%s must not be negative", EnvKillGracePeriod))
	}
	return errors.Join(errs...)
}

// validBaseURL accepts an empty value or an absolute http(s) URL without
// query or fragment, which the runtimes append their API paths to.
func validBaseURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an http or https URL without query or fragment", s)
	}
	return nil
}

// Known reports whether r is one of Runtimes.
func (r Runtime) Known() bool {
	for _, known := range Runtimes {
		if r == known {
			return true
		}
	}
	return false
}

// EncodeList renders a list variable (AGENTLET_COMMAND, AGENTLET_ARGS,
// AGENTLET_TOOLS, AGENTLET_ATTACH_COMMAND) the way FromEnv reads it.
func EncodeList(items []string) string {
	if items == nil {
		items = []string{}
	}
	b, _ := json.Marshal(items) // a []string always marshals
	return string(b)
}

// jsonList is a flag holding a JSON array of strings (the list variables).
type jsonList []string

func (l *jsonList) String() string {
	if l == nil || *l == nil {
		return ""
	}
	return EncodeList(*l)
}

func (l *jsonList) Set(v string) error {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	var items []string
	if err := json.Unmarshal([]byte(v), &items); err != nil {
		return fmt.Errorf("want a JSON array of strings: %w", err)
	}
	*l = items
	return nil
}

func (l *jsonList) Type() string { return "json" }
