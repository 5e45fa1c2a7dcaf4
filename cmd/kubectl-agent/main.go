// Command kubectl-agent is the kubectl plugin for agentkube Agents: `kubectl agent invoke`,
// `kubectl agent logs` and `kubectl agent attach` call the subresources.agentkube.io
// aggregated API through kube-apiserver, with the caller's kubeconfig and identity, exactly
// as kubectl would.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/exec"

	"github.com/exo-in-go/exo/pkg/generated/clientset/versioned"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	err := newRootCommand(streams).ExecuteContext(ctx)
	stop()
	if err == nil {
		return
	}
	// A remote command's exit status becomes ours, as with kubectl exec and attach.
	var exitErr exec.ExitError
	if errors.As(err, &exitErr) && exitErr.Exited() {
		os.Exit(exitErr.ExitStatus())
	}
	var runErr *runExitError
	if errors.As(err, &runErr) {
		os.Exit(runErr.code)
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}

// clientFlags are kubectl's connection flags (--kubeconfig, --context, -n, --as, ...).
type clientFlags struct {
	*genericclioptions.ConfigFlags
}

// namespace is -n, or the kubeconfig context's namespace, or "default".
func (f clientFlags) namespace() (string, error) {
	ns, _, err := f.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("resolving the namespace: %w", err)
	}
	return ns, nil
}

func (f clientFlags) clients() (*rest.Config, versioned.Interface, error) {
	cfg, err := f.ToRESTConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	client, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("building client: %w", err)
	}
	return cfg, client, nil
}

func newRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	flags := clientFlags{genericclioptions.NewConfigFlags(true)}
	root := &cobra.Command{
		Use:   "kubectl-agent",
		Short: "Invoke agentkube Agents, follow their runs and attach to their terminals",
		Long: `kubectl agent works with agentkube Agents through the subresources.agentkube.io API:

  kubectl agent invoke NAME [--input TEXT | -f FILE] [--wait]   start a run (an AgentRun)
  kubectl agent logs NAME [--run RUN] [-f]                      print or follow a run's output
  kubectl agent attach NAME                                     open a terminal in the Agent's runtime`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	flags.AddFlags(root.PersistentFlags())
	root.AddCommand(newInvokeCommand(flags, streams), newLogsCommand(flags, streams), newAttachCommand(flags, streams))
	return root
}

// runExitError carries a finished run's non-zero exit code out of invoke --wait.
type runExitError struct{ code int }

func (e *runExitError) Error() string { return fmt.Sprintf("the run exited with code %d", e.code) }
