package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	// Production is the default, so nothing starts on the public dev secrets.
	if _, err := Load(env(nil)); err == nil || !strings.Contains(err.Error(), "EXO_JWT_SECRET") {
		t.Fatalf("no configuration at all: %v, want EXO_JWT_SECRET required", err)
	}
	c, err := Load(env(map[string]string{"EXO_DEV_MODE": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 9092 || c.BaseURL.String() != "http://localhost:9092" || c.JWTExpiry != 24*time.Hour ||
		!c.DevMode || !c.CORSEnabled || string(c.JWTSecret) != DevJWTSecret || len(c.EncryptionKey) != 32 ||
		c.MaxBodyBytes != 10<<20 || c.CastStorageDir != "/var/lib/exo/casts" || c.CastRetention != 0 {
		t.Fatalf("defaults %+v", c)
	}
	if got := c.Link("/invite/accept", map[string][]string{"token": {"a b"}}); got != "http://localhost:9092/invite/accept?token=a+b" {
		t.Fatal(got)
	}
}

func TestTrustedProxies(t *testing.T) {
	base := map[string]string{"EXO_DEV_MODE": "true"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for bk, bv := range base {
			m[bk] = bv
		}
		return m
	}
	c, err := Load(env(with("EXO_TRUST_PROXY_HEADERS", "true")))
	if err != nil || c.TrustedProxyHops != 1 {
		t.Fatalf("headers trusted without a count: hops %d, %v", c.TrustedProxyHops, err)
	}
	if c, err = Load(env(with("EXO_TRUSTED_PROXIES", "2"))); err != nil || !c.TrustProxyHeaders || c.TrustedProxyHops != 2 {
		t.Fatalf("count: %+v %v", c, err)
	}
	if c, err = Load(env(with("EXO_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7"))); err != nil || len(c.TrustedProxies) != 2 || c.TrustedProxies[1].Bits() != 32 {
		t.Fatalf("CIDRs: %+v %v", c, err)
	}
	for _, bad := range []string{"0", "11", "10.0.0.0/33", "proxy.example"} {
		if _, err := Load(env(with("EXO_TRUSTED_PROXIES", bad))); err == nil || !strings.Contains(err.Error(), "EXO_TRUSTED_PROXIES") {
			t.Errorf("EXO_TRUSTED_PROXIES=%q: %v", bad, err)
		}
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	for name, m := range map[string]map[string]string{
		"EXO_PORT":           {"EXO_PORT": "abc"},
		"EXO_BASE_URL":       {"EXO_BASE_URL": "not a url"},
		"EXO_JWT_EXPIRY":     {"EXO_JWT_EXPIRY": "forever"},
		"EXO_ENCRYPTION_KEY": {"EXO_ENCRYPTION_KEY": "too-short"},
		"EXO_DEV_MODE":       {"EXO_DEV_MODE": "maybe"},
		"EXO_CORS_ENABLED":   {"EXO_CORS_ENABLED": "sometimes"},
		"EXO_CAST_RETENTION": {"EXO_CAST_RETENTION": "90d"},
		"EXO_JWT_SECRET":     {"EXO_DEV_MODE": "false", "EXO_ENCRYPTION_KEY": strings.Repeat("k", 32)},
	} {
		_, err := Load(env(m))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v does not name the variable", name, err)
		}
	}
	// Production mode requires a real key and secret.
	_, err := Load(env(map[string]string{"EXO_DEV_MODE": "false", "EXO_JWT_SECRET": strings.Repeat("s", 40)}))
	if err == nil || !strings.Contains(err.Error(), "EXO_ENCRYPTION_KEY") {
		t.Fatalf("missing key in production: %v", err)
	}
	c, err := Load(env(map[string]string{"EXO_DEV_MODE": "false", "EXO_JWT_SECRET": strings.Repeat("s", 40),
		"EXO_ENCRYPTION_KEY": strings.Repeat("ab", 32)}))
	if err != nil || len(c.EncryptionKey) != 32 || c.EncryptionKey[0] != 0xab {
		t.Fatalf("hex key: %v", err)
	}
}

func TestSignupConfirmEmailDefaults(t *testing.T) {
	prod := map[string]string{"EXO_JWT_SECRET": strings.Repeat("s", 40), "EXO_ENCRYPTION_KEY": strings.Repeat("k", 32)}
	for name, tc := range map[string]struct {
		env  map[string]string
		want bool
	}{
		"production":            {prod, true},
		"dev without mail":      {map[string]string{"EXO_DEV_MODE": "true"}, false},
		"dev with mail":         {map[string]string{"EXO_DEV_MODE": "true", "EXO_SMTP_ADDR": "mail:25"}, true},
		"production, opted out": {map[string]string{"EXO_JWT_SECRET": strings.Repeat("s", 40), "EXO_ENCRYPTION_KEY": strings.Repeat("k", 32), "EXO_SIGNUP_CONFIRM_EMAIL": "false"}, false},
	} {
		c, err := Load(env(tc.env))
		if err != nil || c.SignupConfirmEmail != tc.want {
			t.Errorf("%s: SignupConfirmEmail %v (%v), want %v", name, c != nil && c.SignupConfirmEmail, err, tc.want)
		}
	}
}
