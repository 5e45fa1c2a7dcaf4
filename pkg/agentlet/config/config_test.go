package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func TestFromEnv(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := FromEnv(lookup(map[string]string{
		EnvToken:          "from-env",
		EnvTokenFile:      tokenFile,
		EnvRuntime:        "Custom",
		EnvCommand:        EncodeList([]string{"/bin/sh", "-c", "echo hi"}),
		EnvTools:          `["Read","Edit"]`,
		EnvRecordInput:    "true",
		EnvMaxInputBytes:  "2048",
		EnvDefaultTimeout: "90s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Token != "from-file" {
		t.Errorf("token %q: the file must win and be trimmed", cfg.Token)
	}
	if !slices.Equal(cfg.Command, []string{"/bin/sh", "-c", "echo hi"}) || !slices.Equal(cfg.Tools, []string{"Read", "Edit"}) {
		t.Errorf("lists: %q %q", cfg.Command, cfg.Tools)
	}
	if !cfg.RecordInput || cfg.MaxInputBytes != 2048 || cfg.DefaultTimeout != 90*time.Second || cfg.ListenAddress != ":8090" {
		t.Errorf("unexpected config %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid config rejected: %v", err)
	}
}

func TestFromEnvReportsEveryBadVariable(t *testing.T) {
	_, err := FromEnv(lookup(map[string]string{
		EnvCommand:       "not json",
		EnvRecordInput:   "maybe",
		EnvMaxInputBytes: "lots",
	}))
	if err == nil {
		t.Fatal("bad environment accepted")
	}
	for _, name := range []string{EnvCommand, EnvRecordInput, EnvMaxInputBytes} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not mention %s: %v", name, err)
		}
	}
}

func TestValidateRequiresTokenAndCommand(t *testing.T) {
	err := Default().Validate()
	if err == nil || !strings.Contains(err.Error(), "token") || !strings.Contains(err.Error(), EnvCommand) {
		t.Errorf("got %v, want errors about the token and the Custom command", err)
	}
	c := Default()
	c.Token, c.Runtime = "t", "Nope"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "unknown runtime") {
		t.Errorf("got %v, want unknown runtime", err)
	}
}

func TestModelBaseURL(t *testing.T) {
	cfg, err := FromEnv(lookup(map[string]string{
		EnvToken: "t", EnvRuntime: "Gemini", EnvModel: "gemini-x", EnvModelBaseURL: "http://llm-gateway.ai.svc:8080",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Runtime != RuntimeGemini || cfg.ModelBaseURL != "http://llm-gateway.ai.svc:8080" {
		t.Errorf("runtime %q, base URL %q", cfg.Runtime, cfg.ModelBaseURL)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid config rejected: %v", err)
	}
	for _, bad := range []string{"llm-gateway:8080", "ftp://host/", "http://", "https://host/v1?key=secret", "http://host/#x"} {
		cfg.ModelBaseURL = bad
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), EnvModelBaseURL) {
			t.Errorf("base URL %q: got %v, want an error naming %s", bad, err, EnvModelBaseURL)
		}
	}
}
