//go:build linux

// Command localnode is a development Kubernetes node for machines without a
// container runtime: it registers a Node, runs the containers of pods bound to
// it as host processes through an image → binary map, gives each pod an IP in
// 127.0.0.0/8 and serves the kubelet API so kubectl exec, logs and attach work.
// See docs/localnode.md.
//
// The command is pkg/localnode's Main: every flag can also be set through the
// environment as LOCALNODE_<FLAG> (--image-map ⇔ LOCALNODE_IMAGE_MAP), the
// command line winning; --help prints the table.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/exo-in-go/exo/pkg/localnode"
)

func main() {
	if err := localnode.Main(os.Args[1:], os.LookupEnv, os.Stderr); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "localnode:", err)
		os.Exit(1)
	}
}
