//go:build linux

package localnode

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/api"

	"github.com/exo-in-go/exo/pkg/localnode/internal/shim"
)

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"*agentkube-agentlet*", "ghcr.io/exo-in-go/agentkube-agentlet:v0.3.0", true},
		{"*agentkube-agentlet*", "agentkube-agentlet", true},
		{"*agentkube-agentlet*", "ghcr.io/exo-in-go/agentkube-bastion:v0.3.0", false},
		{"docker.io/library/busybox*", "docker.io/library/busybox:1.36", true},
		{"docker.io/library/busybox*", "busybox:1.36", false},
		{"busybox:1.3?", "busybox:1.36", true},
		{"*", "anything/at:all", true},
		{"exact:1", "exact:1", true},
		{"exact:1", "exact:10", false},
	} {
		if got := globMatch(tc.pattern, tc.name); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.pattern, tc.name, got)
		}
	}
}

func TestParseImageMap(t *testing.T) {
	m, err := ParseImageMap([]byte(`
images:
- image: "*agentkube-agentlet*"
  binary: /bin/true
  env: {AGENTLET_LISTEN_ADDRESS: "$(LOCALNODE_POD_IP):8090"}
- image: "*"
  binary: /bin/sleep
  args: [infinity]
  commands: {/usr/local/bin/claude: /bin/echo}
  inheritEnv: [HOME]
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	e, ok := m.Lookup("ghcr.io/x/agentkube-agentlet:1")
	if !ok || e.Binary != "/bin/true" || e.Env["AGENTLET_LISTEN_ADDRESS"] == "" {
		t.Errorf("lookup agentlet: %+v %v", e, ok)
	}
	e, ok = m.Lookup("claudecode:1")
	if !ok || e.Binary != "/bin/sleep" || e.Args[0] != "infinity" || e.Commands["/usr/local/bin/claude"] != "/bin/echo" {
		t.Errorf("lookup fallback: %+v %v", e, ok)
	}
	if _, err := ParseImageMap([]byte("images:\n- image: x\n  bnary: /bin/true\n")); err == nil {
		t.Error("unknown field accepted")
	}
	if err := (ImageMap{Images: []ImageMapping{{Image: "x", Binary: "relative/bin"}}}).Validate(); err == nil {
		t.Error("relative binary accepted")
	}
	if err := (ImageMap{Images: []ImageMapping{{Image: "x", Binary: "/nonexistent/bin"}}}).Validate(); err == nil {
		t.Error("missing binary accepted")
	}
	f, err := ParseImageFlag("*runtime*=/bin/sleep infinity")
	if err != nil || f.Image != "*runtime*" || f.Binary != "/bin/sleep" || len(f.Args) != 1 {
		t.Errorf("ParseImageFlag: %+v %v", f, err)
	}
}

func TestExpand(t *testing.T) {
	env := newEnvList()
	env.Set("A", "1")
	env.Set("B", "two")
	for in, want := range map[string]string{
		"$(A)-$(B)":    "1-two",
		"$$(A)":        "$(A)",
		"$(MISSING)":   "$(MISSING)",
		"$(A":          "$(A",
		"cost: $5":     "cost: $5",
		"trailing $":   "trailing $",
		"$(A)$(A)$$$$": "11$$",
	} {
		if got := expand(in, env.mapping()); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRewritePaths(t *testing.T) {
	mounts := []string{"/var/lib/agentlet", "/scripts", "/workspace", "/var/lib"}
	root := "/state/pod/rootfs"
	for in, want := range map[string]string{
		"/var/lib/agentlet":              root + "/var/lib/agentlet",
		"/var/lib/agentlet/runs":         root + "/var/lib/agentlet/runs",
		"/var/lib/agentlet2":             root + "/var/lib/agentlet2", // under /var/lib
		"--data=/workspace/x":            "--data=" + root + "/workspace/x",
		`["/scripts/agent.sh","--flag"]`: `["` + root + `/scripts/agent.sh","--flag"]`,
		"cat /scripts/a; ls /scripts":    "cat " + root + "/scripts/a; ls " + root + "/scripts",
		"https://example.com/scripts":    "https://example.com/scripts",
		"/scriptsmore":                   "/scriptsmore",
		"/usr/bin:/workspace/bin":        "/usr/bin:" + root + "/workspace/bin",
		"no paths":                       "no paths",
		root + "/workspace":              root + "/workspace", // already mapped
	} {
		if got := rewritePaths(in, mounts, root); got != want {
			t.Errorf("rewritePaths(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIPAMIsExclusiveAcrossAllocators(t *testing.T) {
	dir := t.TempDir()
	a, err := newIPAM("127.42.0.0/30", dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newIPAM("127.42.0.0/30", dir)
	if err != nil {
		t.Fatal(err)
	}
	// A /30 has two usable addresses.
	ip1, err := a.allocate("pod-1", "")
	if err != nil {
		t.Fatal(err)
	}
	ip2, err := b.allocate("pod-2", "")
	if err != nil {
		t.Fatal(err)
	}
	if ip1 == ip2 {
		t.Fatalf("both allocators handed out %s", ip1)
	}
	if _, err := a.allocate("pod-3", ""); err == nil {
		t.Fatal("allocated beyond the prefix")
	}
	b.release(ip2)
	ip3, err := a.allocate("pod-3", ip2.String())
	if err != nil || ip3 != ip2 {
		t.Fatalf("preferred free IP: got %s, %v", ip3, err)
	}
	if _, err := newIPAM("10.0.0.0/8", dir); err == nil {
		t.Error("non-loopback CIDR accepted")
	}
	if !netip.MustParsePrefix(DefaultPodCIDR).Addr().IsLoopback() {
		t.Error("default CIDR is not loopback")
	}
}

func TestLogsFollowTailRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	lf, err := createLogFile(path, 200)
	if err != nil {
		t.Fatal(err)
	}
	lf.write("stdout", []byte("one\ntwo\n"))
	lf.write("stderr", []byte("err\n"))
	lf.write("stdout", []byte("prompt$ "))

	read := func(opts api.ContainerLogOpts, live *logFile) string {
		var buf bytes.Buffer
		if err := streamLogs(context.Background(), &buf, live, []string{path + ".1", path}, opts); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	if got := read(api.ContainerLogOpts{}, lf); got != "one\ntwo\nerr\nprompt$ " {
		t.Errorf("all: %q", got)
	}
	if got := read(api.ContainerLogOpts{Tail: 2}, lf); got != "err\nprompt$ " {
		t.Errorf("tail 2: %q", got)
	}
	if got := read(api.ContainerLogOpts{LimitBytes: 5}, lf); got != "one\nt" {
		t.Errorf("limit 5: %q", got)
	}
	if got := read(api.ContainerLogOpts{Timestamps: true, Tail: 1}, lf); !strings.HasSuffix(got, " prompt$ ") {
		t.Errorf("timestamps: %q", got)
	}

	// Follow across a rotation until the instance ends.
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := streamLogs(context.Background(), pw, lf, []string{path + ".1", path}, api.ContainerLogOpts{Follow: true})
		pw.CloseWithError(err)
		done <- err
	}()
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(pr)
		got <- string(b)
	}()
	time.Sleep(100 * time.Millisecond)
	lf.write("stdout", []byte("ok\n"))
	for i := 0; i < 10; i++ {
		lf.write("stdout", []byte(strings.Repeat("x", 20)+"\n")) // rotates past 200 bytes
		time.Sleep(5 * time.Millisecond)
	}
	lf.write("stdout", []byte("last\n"))
	lf.close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end with the instance")
	}
	out := <-got
	want := "one\ntwo\nerr\nprompt$ ok\n" + strings.Repeat(strings.Repeat("x", 20)+"\n", 10) + "last\n"
	if out != want {
		t.Errorf("follow:\n got %q\nwant %q", out, want)
	}
	if _, err := os.Stat(path + ".1"); err != nil {
		t.Errorf("no rotation happened: %v", err)
	}
}

// BenchmarkShimStart: starting /bin/true under a shim (a re-execution of this
// test binary) until it has ended.
func BenchmarkShimStart(b *testing.B) {
	for i := 0; i < b.N; i++ {
		p, err := shim.Start(shim.Spec{Path: "/bin/true", Argv: []string{"true"}})
		if err != nil {
			b.Fatal(err)
		}
		<-p.Done()
	}
}
