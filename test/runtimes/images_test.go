package runtimes

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/exo-in-go/exo/pkg/runtimes"
	"github.com/exo-in-go/exo/test/framework"
)

// pins reads hack/agent-clis.txt: binary → {package, version}.
func pins(t *testing.T) map[string][2]string {
	t.Helper()
	f, err := os.Open(filepath.Join(framework.RepoRoot(), "hack", "agent-clis.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][2]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != 3 {
			t.Fatalf("hack/agent-clis.txt: %q is not \"binary package version\"", sc.Text())
		}
		out[fields[0]] = [2]string{fields[1], fields[2]}
	}
	return out
}

// TestRuntimeImagesPinTheTestedCLIs: every verified runtime has a Dockerfile
// under images/runtimes/<its image name>, which installs exactly the package
// and version test/runtimes drives, runs it as the Agent pods' user with a
// HOME, and starts the CLI.
func TestRuntimeImagesPinTheTestedCLIs(t *testing.T) {
	pinned := pins(t)
	arg := regexp.MustCompile(`(?m)^ARG (CLI_PACKAGE|CLI_VERSION)=(\S+)$`)
	for _, tc := range cases {
		rt, ok := runtimes.Lookup(tc.runtime)
		if !ok {
			t.Fatalf("%s is not in the runtime matrix", tc.runtime)
		}
		path := filepath.Join(framework.RepoRoot(), "images", "runtimes", rt.Component.Image, "Dockerfile")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v", tc.runtime, err)
			continue
		}
		df := string(b)
		args := map[string]string{}
		for _, m := range arg.FindAllStringSubmatch(df, -1) {
			args[m[1]] = m[2]
		}
		var binary string
		for bin, p := range pinned {
			if p[0] == args["CLI_PACKAGE"] {
				binary = bin
				if p[1] != args["CLI_VERSION"] {
					t.Errorf("%s installs %s@%s; hack/agent-clis.txt pins %s", path, p[0], args["CLI_VERSION"], p[1])
				}
			}
		}
		if binary == "" {
			t.Errorf("%s installs %q, which hack/agent-clis.txt does not pin", path, args["CLI_PACKAGE"])
		}
		for _, want := range []string{"FROM node:", "USER 65532:65532", "ENV HOME=/home/agent", "WORKDIR /workspace", `ENTRYPOINT ["` + binary + `"]`} {
			if !strings.Contains(df, want) {
				t.Errorf("%s lacks %q", path, want)
			}
		}
	}
	if len(pinned) != len(cases) {
		t.Errorf("hack/agent-clis.txt pins %d CLIs, test/runtimes drives %d", len(pinned), len(cases))
	}
}
