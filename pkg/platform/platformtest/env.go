package platformtest

import (
	"maps"
	"strings"
	"testing"
)

// Env returns the EXO_* variables of an exo-app for a test: dev mode on
// baseURL, fixed test secrets, a fresh database of backend, a temporary
// recordings directory and a login rate limit tests do not hit; extra
// overrides or adds variables. Pass the result's lookup to config.Load and
// the other *FromEnv functions.
func Env(t testing.TB, baseURL, backend string, extra map[string]string) map[string]string {
	t.Helper()
	vars := map[string]string{
		"EXO_DEV_MODE":              "true",
		"EXO_BASE_URL":              baseURL,
		"EXO_JWT_SECRET":            "test-secret-test-secret-test-secret",
		"EXO_ENCRYPTION_KEY":        strings.Repeat("k", 32),
		"EXO_DATABASE_DSN":          DSN(t, backend),
		"EXO_CAST_STORAGE_DIR":      t.TempDir(),
		"EXO_LOGIN_RATE_PER_MINUTE": "100000",
		"EXO_AUTH_RATE_PER_MINUTE":  "100000",
	}
	maps.Copy(vars, extra)
	return vars
}
