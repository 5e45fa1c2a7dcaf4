package options

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestPrecedenceDefaultsEnvFlags(t *testing.T) {
	s := New("test", "T_")
	qps := s.Flags().Float32("kube-api-qps", 50, "qps")
	burst := s.Flags().Int("kube-api-burst", 100, "burst")
	ns := s.Flags().String("namespace", "default-ns", "namespace")
	list := s.Flags().StringArray("image", nil, "images")
	s.ListVariable("image", ";")
	gfs := flag.NewFlagSet("go", flag.ContinueOnError)
	verbose := gfs.Bool("verbose", false, "verbose")
	s.AddGoFlagSet(gfs)
	err := s.Parse([]string{"--kube-api-burst=7", "--image", "c", "--verbose"}, env(map[string]string{
		"T_KUBE_API_QPS": "5", "T_KUBE_API_BURST": "9", "T_IMAGE": "a; b", "T_NAMESPACE": "",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if *qps != 5 || *burst != 7 || *ns != "default-ns" || !*verbose {
		t.Errorf("qps %v burst %v namespace %q verbose %v", *qps, *burst, *ns, *verbose)
	}
	if strings.Join(*list, ",") != "a,b,c" {
		t.Errorf("image %q: want the variable's values before the command line's", *list)
	}
}

func TestEveryErrorAtOnce(t *testing.T) {
	s := New("test", "T_")
	s.Flags().Duration("timeout", time.Second, "")
	s.Flags().Int("count", 1, "")
	s.Flags().Bool("on", false, "")
	err := s.Parse([]string{"--count=x", "--on=maybe"}, env(map[string]string{"T_TIMEOUT": "soon"}))
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, want := range []string{"T_TIMEOUT", "--count", "--on"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from %v", want, err)
		}
	}
}

func TestHelpListsVariables(t *testing.T) {
	s := New("test", "T_")
	s.Flags().String("state-dir", "", "where state lives")
	s.Flags().String("secret", "", "no variable")
	s.SetVariable("secret", "")
	var out bytes.Buffer
	s.Output = &out
	if err := s.Parse([]string{"--help"}, nil); !errors.Is(err, pflag.ErrHelp) {
		t.Fatalf("got %v, want ErrHelp", err)
	}
	if !strings.Contains(out.String(), "[$T_STATE_DIR]") || strings.Contains(out.String(), "T_SECRET") {
		t.Errorf("usage:\n%s", out.String())
	}
}
