// Package config loads the exo-app configuration from EXO_* environment
// variables. Every invalid value is reported with the name of the variable so
// that a misconfigured Deployment fails fast with a message an operator can act on.
package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DevJWTSecret is the documented development default for EXO_JWT_SECRET. It is
// refused outside dev mode because anyone could mint tokens with it.
const DevJWTSecret = "changeme-secret-key"

// Config is the complete runtime configuration of exo-app.
type Config struct {
	Port           int
	BaseURL        *url.URL
	DatabaseDSN    string
	JWTSecret      []byte
	JWTExpiry      time.Duration
	EncryptionKey  []byte // exactly 32 bytes
	CastStorageDir string
	// CastRetention is how long shell recordings are kept after their
	// session ended (EXO_CAST_RETENTION, a Go duration; 0, the default,
	// keeps them until their tenant is deleted).
	CastRetention time.Duration
	DevMode       bool
	LogLevel      slog.Level

	// CORSEnabled turns the permissive CORS headers on (the default). Gateways
	// that inject their own CORS headers set EXO_CORS_ENABLED=false so the
	// headers are never doubled.
	CORSEnabled   bool
	SignupEnabled bool
	// SignupConfirmEmail makes self sign-up confirm the address by mail
	// before the account exists (EXO_SIGNUP_CONFIRM_EMAIL; true unless dev
	// mode runs without a mail relay). Without it, sign-up tells taken
	// addresses apart and lets anyone hold an address they do not own.
	SignupConfirmEmail bool
	MaxBodyBytes       int64

	// LoginRatePerMinute bounds failed and successful login attempts per
	// e-mail address (and, more generously, per client address).
	LoginRatePerMinute int
	// AuthRatePerMinute bounds, per client address, the anonymous auth
	// endpoints that hash or send mail: sign-up, password reset (request
	// and confirm), invitation acceptance and SSO start.
	AuthRatePerMinute int
	// PasswordHashConcurrency bounds concurrent argon2id computations
	// (19 MiB each) in the process; requests beyond it wait briefly, then
	// get 503 with Retry-After.
	PasswordHashConcurrency int

	// TrustProxyHeaders makes client addresses come from X-Forwarded-For,
	// trusting the hops TrustedProxyHops or TrustedProxies describe.
	TrustProxyHeaders bool
	// TrustedProxyHops is how many proxies in front of exo-app append to
	// X-Forwarded-For (EXO_TRUSTED_PROXIES as a number; 1 by default when
	// headers are trusted). The client is that many entries from the right.
	TrustedProxyHops int
	// TrustedProxies are the networks of the proxies (EXO_TRUSTED_PROXIES as
	// CIDRs): the client is the right-most hop outside them.
	TrustedProxies []netip.Prefix

	// OIDCAllowedNetworks are private networks an identity provider may be
	// reached on outside dev mode (EXO_OIDC_ALLOWED_NETWORKS, CIDRs), for
	// on-premises providers. Loopback, link-local, private and metadata
	// addresses are refused otherwise.
	OIDCAllowedNetworks []netip.Prefix

	SMTP SMTPConfig

	InvitationTTL time.Duration
	ResetTTL      time.Duration
}

// SMTPConfig describes the outgoing mail relay. An empty Addr disables mail.
type SMTPConfig struct {
	Addr     string // host:port
	From     string
	Username string
	Password string
	// StartTLS requires STARTTLS before authenticating ("true" by default
	// when a username is set and the relay is not on loopback).
	StartTLS bool
}

// Getenv is the signature of os.Getenv; tests pass a map lookup.
type Getenv func(string) string

// Load reads the configuration. It returns an error naming the offending
// variable for any invalid value.
func Load(getenv Getenv) (*Config, error) {
	c := &Config{}
	var errs []error
	fail := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}

	var err error
	// Production is the default: a deployment that forgets the variable must
	// not run on the public development secrets.
	if c.DevMode, err = parseBool(getenv("EXO_DEV_MODE"), false); err != nil {
		fail("EXO_DEV_MODE", "%v", err)
	}

	c.Port = 9092
	if v := getenv("EXO_PORT"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 65535 {
			fail("EXO_PORT", "must be a port number 0-65535, got %q", v)
		} else {
			c.Port = p
		}
	}

	base := getenv("EXO_BASE_URL")
	if base == "" {
		base = "http://localhost:9092"
	}
	if u, err := url.Parse(strings.TrimRight(base, "/")); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fail("EXO_BASE_URL", "must be an absolute http(s) URL, got %q", base)
	} else if u.RawQuery != "" || u.Fragment != "" {
		fail("EXO_BASE_URL", "must not contain a query or fragment, got %q", base)
	} else {
		c.BaseURL = u
	}

	c.DatabaseDSN = getenv("EXO_DATABASE_DSN")
	if c.DatabaseDSN == "" {
		c.DatabaseDSN = "exo.db"
	}

	secret := getenv("EXO_JWT_SECRET")
	switch {
	case secret == "" && c.DevMode:
		secret = DevJWTSecret
	case secret == "":
		fail("EXO_JWT_SECRET", "is required when EXO_DEV_MODE=false")
	case secret == DevJWTSecret && !c.DevMode:
		fail("EXO_JWT_SECRET", "must not be the development default when EXO_DEV_MODE=false")
	case len(secret) < 32 && !c.DevMode:
		fail("EXO_JWT_SECRET", "must be at least 32 bytes when EXO_DEV_MODE=false")
	}
	c.JWTSecret = []byte(secret)

	c.JWTExpiry = 24 * time.Hour
	if v := getenv("EXO_JWT_EXPIRY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			fail("EXO_JWT_EXPIRY", "must be a positive Go duration such as 24h, got %q", v)
		} else {
			c.JWTExpiry = d
		}
	}

	if v := getenv("EXO_ENCRYPTION_KEY"); v != "" {
		k, err := ParseKey(v)
		if err != nil {
			fail("EXO_ENCRYPTION_KEY", "%v", err)
		}
		c.EncryptionKey = k
	} else if c.DevMode {
		// A fixed development key keeps dev databases readable across restarts;
		// main logs a warning. Never used outside dev mode.
		c.EncryptionKey = []byte("exo-dev-mode-insecure-key-32byte")
	} else {
		fail("EXO_ENCRYPTION_KEY", "is required when EXO_DEV_MODE=false (32 bytes, raw, hex or base64)")
	}

	c.CastStorageDir = getenv("EXO_CAST_STORAGE_DIR")
	if c.CastStorageDir == "" {
		c.CastStorageDir = "/var/lib/exo/casts"
	}
	if v := getenv("EXO_CAST_RETENTION"); v != "" {
		if d, err := time.ParseDuration(v); err != nil || d < 0 {
			fail("EXO_CAST_RETENTION", "must be a Go duration such as 2160h (90 days), or 0 to keep recordings, got %q", v)
		} else {
			c.CastRetention = d
		}
	}

	c.LogLevel = slog.LevelInfo
	if c.DevMode {
		c.LogLevel = slog.LevelDebug
	}
	if v := getenv("EXO_LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			fail("EXO_LOG_LEVEL", "must be debug, info, warn or error, got %q", v)
		}
	}

	if c.CORSEnabled, err = parseBool(getenv("EXO_CORS_ENABLED"), true); err != nil {
		fail("EXO_CORS_ENABLED", "%v", err)
	}
	if c.SignupEnabled, err = parseBool(getenv("EXO_SIGNUP_ENABLED"), true); err != nil {
		fail("EXO_SIGNUP_ENABLED", "%v", err)
	}
	if c.SignupConfirmEmail, err = parseBool(getenv("EXO_SIGNUP_CONFIRM_EMAIL"), !(c.DevMode && getenv("EXO_SMTP_ADDR") == "")); err != nil {
		fail("EXO_SIGNUP_CONFIRM_EMAIL", "%v", err)
	}
	if c.TrustProxyHeaders, err = parseBool(getenv("EXO_TRUST_PROXY_HEADERS"), false); err != nil {
		fail("EXO_TRUST_PROXY_HEADERS", "%v", err)
	}
	if v := strings.TrimSpace(getenv("EXO_TRUSTED_PROXIES")); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			if n < 1 || n > 10 {
				fail("EXO_TRUSTED_PROXIES", "must be a number of proxies 1-10 or a list of CIDRs, got %q", v)
			}
			c.TrustedProxyHops = n
		} else if c.TrustedProxies, err = parsePrefixes(v); err != nil {
			fail("EXO_TRUSTED_PROXIES", "must be a number of proxies 1-10 or a comma-separated list of CIDRs: %v", err)
		}
		c.TrustProxyHeaders = true
	} else if c.TrustProxyHeaders {
		c.TrustedProxyHops = 1
	}
	if v := getenv("EXO_OIDC_ALLOWED_NETWORKS"); v != "" {
		if c.OIDCAllowedNetworks, err = parsePrefixes(v); err != nil {
			fail("EXO_OIDC_ALLOWED_NETWORKS", "must be a comma-separated list of CIDRs: %v", err)
		}
	}

	c.MaxBodyBytes = 10 << 20
	if v := getenv("EXO_MAX_BODY_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			fail("EXO_MAX_BODY_BYTES", "must be a positive integer, got %q", v)
		} else {
			c.MaxBodyBytes = n
		}
	}

	c.LoginRatePerMinute = 10
	if v := getenv("EXO_LOGIN_RATE_PER_MINUTE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			fail("EXO_LOGIN_RATE_PER_MINUTE", "must be a positive integer, got %q", v)
		} else {
			c.LoginRatePerMinute = n
		}
	}

	c.AuthRatePerMinute = 30
	if v := getenv("EXO_AUTH_RATE_PER_MINUTE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			fail("EXO_AUTH_RATE_PER_MINUTE", "must be a positive integer, got %q", v)
		} else {
			c.AuthRatePerMinute = n
		}
	}
	c.PasswordHashConcurrency = 4
	if v := getenv("EXO_PASSWORD_HASH_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 64 {
			fail("EXO_PASSWORD_HASH_CONCURRENCY", "must be an integer 1-64, got %q", v)
		} else {
			c.PasswordHashConcurrency = n
		}
	}

	c.SMTP.Addr = getenv("EXO_SMTP_ADDR")
	c.SMTP.From = getenv("EXO_SMTP_FROM")
	c.SMTP.Username = getenv("EXO_SMTP_USERNAME")
	c.SMTP.Password = getenv("EXO_SMTP_PASSWORD")
	if c.SMTP.Addr != "" {
		if !strings.Contains(c.SMTP.Addr, ":") {
			fail("EXO_SMTP_ADDR", "must be host:port, got %q", c.SMTP.Addr)
		}
		if c.SMTP.From == "" {
			c.SMTP.From = "exo@" + hostOnly(c.BaseURL)
		}
	}
	if c.SMTP.StartTLS, err = parseBool(getenv("EXO_SMTP_STARTTLS"), c.SMTP.Username != ""); err != nil {
		fail("EXO_SMTP_STARTTLS", "%v", err)
	}

	c.InvitationTTL = 7 * 24 * time.Hour
	if v := getenv("EXO_INVITATION_TTL"); v != "" {
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			fail("EXO_INVITATION_TTL", "must be a positive Go duration, got %q", v)
		} else {
			c.InvitationTTL = d
		}
	}
	c.ResetTTL = time.Hour
	if v := getenv("EXO_PASSWORD_RESET_TTL"); v != "" {
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			fail("EXO_PASSWORD_RESET_TTL", "must be a positive Go duration, got %q", v)
		} else {
			c.ResetTTL = d
		}
	}

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// Link builds an absolute URL under EXO_BASE_URL, used for e-mail links and
// OAuth callbacks so they point at the public origin, not the pod.
func (c *Config) Link(path string, query url.Values) string {
	u := *c.BaseURL
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = query.Encode()
	return u.String()
}

// ParseKey accepts a 32-byte key given raw, as 64 hex characters or as
// standard/URL base64.
func ParseKey(v string) ([]byte, error) {
	if len(v) == 64 {
		if b, err := hex.DecodeString(v); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	if len(v) == 32 {
		return []byte(v), nil
	}
	return nil, fmt.Errorf("must be exactly 32 bytes (raw, 64 hex characters or base64), got %d characters", len(v))
}

func parseBool(v string, def bool) (bool, error) {
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def, fmt.Errorf("must be true or false, got %q", v)
	}
	return b, nil
}

func parsePrefixes(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, err
			}
			f = netip.PrefixFrom(a, a.BitLen()).String()
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func hostOnly(u *url.URL) string {
	if u == nil {
		return "localhost"
	}
	return u.Hostname()
}
