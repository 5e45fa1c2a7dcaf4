// Command realnode runs the real single-node Kubernetes cluster of test/realnode by hand
// (hack/run-cluster installs the whole product on the same node): kubelet, containerd,
// kube-proxy and CoreDNS in a network namespace, state and logs in a folder. It needs
// root and `make realnode-deps`.
//
//	go run ./hack/realnode up /tmp/rn [ARCHIVE...]   start, print how to use it, stop on Ctrl-C
//	go run ./hack/realnode import /tmp/rn ARCHIVE...  import images into the running cluster
//	go run ./hack/realnode down /tmp/rn              stop it from another shell, or clean up a crashed run
//	go run ./hack/realnode busybox                   build the busybox test image, print its archive
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/exo-in-go/exo/test/realnode"
)

const usage = `usage: realnode <command> [flags] [arguments]

commands:
  up [--name N] [--port P] [--no-kube-proxy] [--aggregator-routing] DIR [ARCHIVE...]
         start a cluster with its state and logs in DIR (at most 60 characters), import
         the image archives, print how to use it, and stop it on Ctrl-C or SIGTERM
  import DIR ARCHIVE...
         import image archives (hack/images.sh build, docker save) into the cluster of DIR
  down DIR
         stop the cluster of DIR (asking its up to stop), or remove what a crashed run left
  busybox
         build the busybox test image and print its archive and reference
`

func main() {
	log.SetFlags(0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "up":
		return up(ctx, args[1:])
	case "import":
		if len(args) < 3 {
			return errors.New("import needs DIR and at least one ARCHIVE")
		}
		return realnode.ImportInto(ctx, args[1], args[2:]...)
	case "down":
		if len(args) != 2 {
			return errors.New("down needs DIR")
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return realnode.Down(ctx, args[1])
	case "busybox":
		archive, err := realnode.BusyboxImage(ctx)
		if err != nil {
			return err
		}
		fmt.Println(archive, realnode.BusyboxImageRef)
		return nil
	case "-h", "--help", "help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func up(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	var opts realnode.Options
	fs.StringVar(&opts.Name, "name", "", "name of the node, network namespace and cgroup (derived from DIR when empty)")
	fs.IntVar(&opts.APIServerPort, "port", 0, "host port of the kube-apiserver forwarder on 127.0.0.1 (any free one when 0)")
	fs.BoolVar(&opts.NoKubeProxy, "no-kube-proxy", false, "run no kube-proxy (Service ClusterIPs lead nowhere)")
	fs.BoolVar(&opts.AggregatorRouting, "aggregator-routing", false, "kube-apiserver --enable-aggregator-routing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		return errors.New("up needs DIR")
	}
	opts.Dir, opts.Images = fs.Arg(0), fs.Args()[1:]
	opts.Logf = func(format string, args ...any) { log.Printf("realnode: "+format, args...) }
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	c, err := realnode.Start(startCtx, opts)
	if err != nil {
		return err
	}
	fmt.Printf(`
Cluster %[1]s is up; its logs are in %[2]s/log.

  export KUBECONFIG=%[3]s PATH=%[4]s:$PATH
  kubectl get pods -A
  go run ./hack/realnode import %[2]s ARCHIVE...    # images for pods (imagePullPolicy: Never)
  go run ./hack/realnode busybox                    # a shell image to import

Pods reach the node at %[5]s; nothing outside the cluster. Ctrl-C stops it all.
`, c.Name, c.Dir, c.Kubeconfig, c.BinDir, realnode.NodeIP)
	<-ctx.Done()
	log.Print("stopping")
	return c.Stop()
}
