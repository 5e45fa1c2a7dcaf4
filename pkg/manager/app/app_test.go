package app

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/exo-in-go/exo/pkg/manager"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Defaults < AGENTKUBE_* < flags, as docs/manager.md says.
func TestLoadPrecedence(t *testing.T) {
	st, err := Load([]string{"--kube-api-burst=7", "--webhook-port=9999"}, env(map[string]string{
		"AGENTKUBE_KUBE_API_QPS":   "5",
		"AGENTKUBE_KUBE_API_BURST": "9",
		"AGENTKUBE_LEADER_ELECT":   "false",
		"AGENTKUBE_SECURE_PORT":    "18082",
		"AGENTKUBE_MANAGED":        "true",
		"AGENTKUBE_AUTH_TOKEN":     "t",
		"AGENTKUBE_BASE_URL":       "https://exo.example.com",
		"AGENTKUBE_CLUSTER_ID":     "prod",
	}), []string{"AGENTKUBE_IMAGE_TAG=v9"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := st.Manager
	if m.KubeAPIQPS != 5 || m.KubeAPIBurst != 7 || m.LeaderElection || m.Namespace != "agentkube-system" {
		t.Errorf("manager settings %+v", m)
	}
	if st.Webhook.Port != 9999 || st.API.SecureServing.BindPort != 18082 {
		t.Errorf("webhook port %d, API port %d", st.Webhook.Port, st.API.SecureServing.BindPort)
	}
	if !st.Connect.Managed || st.Connect.Token != "t" || st.Connect.ClusterID != "prod" {
		t.Errorf("connect settings %+v", st.Connect)
	}
	if !strings.Contains(m.Images.String(), "v9") {
		t.Errorf("images %s: AGENTKUBE_IMAGE_TAG ignored", m.Images.String())
	}
}

func TestLoadReportsEveryError(t *testing.T) {
	_, err := Load([]string{"--webhook-port=x", "--leader-elect=maybe"}, env(map[string]string{
		"AGENTKUBE_KUBE_API_QPS": "lots", "AGENTKUBE_RUN_POLL_INTERVAL": "soon",
	}), nil, nil)
	if err == nil {
		t.Fatal("bad settings accepted")
	}
	for _, want := range []string{"--webhook-port", "--leader-elect", "AGENTKUBE_KUBE_API_QPS", "AGENTKUBE_RUN_POLL_INTERVAL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s missing from %v", want, err)
		}
	}
}

func TestHelpPrintsVariables(t *testing.T) {
	var out bytes.Buffer
	if _, err := Load([]string{"--help"}, env(nil), nil, &out); !errors.Is(err, pflag.ErrHelp) {
		t.Fatalf("got %v, want ErrHelp", err)
	}
	for _, want := range []string{"--kube-api-qps", "[$AGENTKUBE_KUBE_API_QPS]", "[$AGENTKUBE_MANAGED]", "[$AGENTKUBE_SECURE_PORT]", "[$AGENTKUBE_CERT_SECRET]"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("%s missing from --help", want)
		}
	}
}

// --controllers as kube-controller-manager's: all by default, "-name" leaves one
// out, empty runs none, and an unknown name is an error.
func TestLoadControllers(t *testing.T) {
	for _, c := range []struct {
		args      []string
		on, off   []string
		wantError bool
	}{
		{args: nil, on: []string{"agent", "claw"}},
		{args: []string{"--controllers=*,-claw"}, on: []string{"agent", "tool"}, off: []string{"claw"}},
		{args: []string{"--controllers=agent,agentrun"}, on: []string{"agent", "agentrun"}, off: []string{"tool"}},
		{args: []string{"--controllers="}, off: []string{"agent", "agentrun", "claw"}},
		{args: []string{"--controllers=agnet"}, wantError: true},
	} {
		st, err := Load(c.args, env(nil), nil, nil)
		if c.wantError {
			if err == nil || !strings.Contains(err.Error(), "agnet") {
				t.Errorf("%v: got %v, want an error naming the controller", c.args, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		for _, n := range c.on {
			if !manager.ControllerEnabled(st.Manager.Controllers, n) {
				t.Errorf("%v: %s off", c.args, n)
			}
		}
		for _, n := range c.off {
			if manager.ControllerEnabled(st.Manager.Controllers, n) {
				t.Errorf("%v: %s on", c.args, n)
			}
		}
	}
}
