// Package config is the contract between the agentkube manager, which writes
// the agentlet's environment into every Agent pod, and the agentlet, which
// reads it. The manager imports the Env* names from here so both sides can
// never drift apart; docs/agentlet.md describes each variable.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
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
	RuntimeGoose      Runtime = "Goose"
	RuntimeCursor     Runtime = "Cursor"
	RuntimeCustom     Runtime = "Custom"
)

// Runtimes lists every supported runtime.
var Runtimes = []Runtime{
	RuntimeClaudeCode, RuntimeCodex, RuntimeOpenCode, RuntimeAider,
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

// FromEnv builds a Config from Default and the given lookup function
// (os.LookupEnv in production). It reads the token file when one is named.
func FromEnv(lookup func(string) (string, bool)) (Config, error) {
	c := Default()
	p := envParser{lookup: lookup}
	p.str(EnvListenAddress, &c.ListenAddress)
	p.str(EnvToken, &c.Token)
	p.str(EnvTLSCertFile, &c.TLSCertFile)
	p.str(EnvTLSKeyFile, &c.TLSKeyFile)
	var runtime string
	if p.str(EnvRuntime, &runtime) {
		c.Runtime = Runtime(runtime)
	}
	p.str(EnvGoal, &c.Goal)
	p.str(EnvModel, &c.Model)
	p.str(EnvModelProvider, &c.ModelProvider)
	p.list(EnvTools, &c.Tools)
	p.list(EnvCommand, &c.Command)
	p.list(EnvArgs, &c.Args)
	p.list(EnvAttachCommand, &c.AttachCommand)
	p.str(EnvWorkDir, &c.WorkDir)
	p.str(EnvDataDir, &c.DataDir)
	p.boolean(EnvRecordInput, &c.RecordInput)
	p.int64(EnvMaxInputBytes, &c.MaxInputBytes)
	p.int64(EnvMaxOutputBytes, &c.MaxOutputBytes)
	p.int64(EnvMaxRecordingBytes, &c.MaxRecordingBytes)
	p.integer(EnvRunHistory, &c.RunHistory)
	p.duration(EnvDefaultTimeout, &c.DefaultTimeout)
	p.duration(EnvMaxTimeout, &c.MaxTimeout)
	p.duration(EnvKillGracePeriod, &c.KillGracePeriod)
	p.integer(EnvMaxAttachSessions, &c.MaxAttachSessions)
	p.duration(EnvAttachPingInterval, &c.AttachPingPeriod)
	p.str(EnvLogLevel, &c.LogLevel)

	var tokenFile string
	if p.str(EnvTokenFile, &tokenFile) && tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s: read token: %w", EnvTokenFile, err))
		} else {
			c.Token = strings.TrimSpace(string(b))
		}
	}
	if err := errors.Join(p.errs...); err != nil {
		return Config{}, err
	}
	return c, nil
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

// envParser collects every malformed variable instead of stopping at the
// first, so an operator fixes the pod spec in one go.
type envParser struct {
	lookup func(string) (string, bool)
	errs   []error
}

func (p *envParser) str(name string, dst *string) bool {
	v, ok := p.lookup(name)
	if ok {
		*dst = v
	}
	return ok
}

func (p *envParser) list(name string, dst *[]string) {
	v, ok := p.lookup(name)
	if !ok || strings.TrimSpace(v) == "" {
		return
	}
	var items []string
	if err := json.Unmarshal([]byte(v), &items); err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s: want a JSON array of strings: %w", name, err))
		return
	}
	*dst = items
}

func (p *envParser) boolean(name string, dst *bool) {
	if v, ok := p.lookup(name); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		*dst = b
	}
}

func (p *envParser) int64(name string, dst *int64) {
	if v, ok := p.lookup(name); ok && v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		*dst = n
	}
}

func (p *envParser) integer(name string, dst *int) {
	n := int64(*dst)
	p.int64(name, &n)
	*dst = int(n)
}

func (p *envParser) duration(name string, dst *time.Duration) {
	if v, ok := p.lookup(name); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		*dst = d
	}
}
