package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/apis/subresources"
	subresourcesv1alpha1 "github.com/exo-in-go/exo/pkg/apis/subresources/v1alpha1"
)

type invokeOptions struct {
	input, file    string
	args           []string
	wait           bool
	waitSeconds    int32
	timeoutSeconds int64
	dryRun         bool
	output         string
}

func newInvokeCommand(flags clientFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &invokeOptions{}
	cmd := &cobra.Command{
		Use:   "invoke NAME [--input TEXT | -f FILE] [--wait]",
		Short: "Start a run of an Agent",
		Long: `Start a run of an Agent (POST agents/NAME/invoke), which creates an AgentRun.

Without --wait the command returns once the run exists; follow it with
'kubectl agent logs NAME --run RUN -f'. With --wait it waits until the run ends (at most
50 seconds: kube-apiserver ends requests after 60), prints the run's output and exits with
the run's exit code.`,
		Example: `  kubectl agent invoke reviewer --input "review PR 42" --wait
  kubectl agent invoke reviewer -f prompt.md -n team-a
  git diff | kubectl agent invoke reviewer -f - --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, flags, streams, args[0])
		},
	}
	cmd.Flags().StringVar(&o.input, "input", "", "The run's input (its prompt).")
	cmd.Flags().StringVarP(&o.file, "filename", "f", "", "Read the input from this file; - reads standard input.")
	cmd.Flags().StringArrayVar(&o.args, "arg", nil, "An extra argument for this run; repeat for more.")
	cmd.Flags().BoolVar(&o.wait, "wait", false, "Wait for the run to end and print its output.")
	cmd.Flags().Int32Var(&o.waitSeconds, "wait-seconds", subresources.MaxWaitSeconds, "With --wait, how long to wait (at most 50).")
	cmd.Flags().Int64Var(&o.timeoutSeconds, "timeout-seconds", 0, "Bound the run itself; 0 uses the Agent's default.")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "Validate the invocation on the server without starting a run.")
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "Print the AgentInvocation as json or yaml instead.")
	return cmd
}

func (o *invokeOptions) run(cmd *cobra.Command, flags clientFlags, streams genericiooptions.IOStreams, name string) error {
	if o.input != "" && o.file != "" {
		return errors.New("--input and -f are mutually exclusive")
	}
	if o.output != "" && o.output != "json" && o.output != "yaml" {
		return fmt.Errorf("--output must be json or yaml, not %q", o.output)
	}
	input := o.input
	if o.file != "" {
		var data []byte
		var err error
		if o.file == "-" {
			data, err = io.ReadAll(streams.In)
		} else {
			data, err = os.ReadFile(o.file)
		}
		if err != nil {
			return fmt.Errorf("reading the input: %w", err)
		}
		input = string(data)
	}
	ns, err := flags.namespace()
	if err != nil {
		return err
	}
	_, client, err := flags.clients()
	if err != nil {
		return err
	}
	inv := &subresourcesv1alpha1.AgentInvocation{
		Spec: subresourcesv1alpha1.AgentInvocationSpec{Input: input, Args: o.args, TimeoutSeconds: o.timeoutSeconds},
	}
	if o.wait {
		inv.Spec.WaitSeconds = o.waitSeconds
	}
	opts := metav1.CreateOptions{}
	if o.dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	result, err := client.SubresourcesV1alpha1().Agents(ns).Invoke(cmd.Context(), name, inv, opts)
	if err != nil {
		return err
	}

	switch o.output {
	case "json":
		result.APIVersion, result.Kind = subresourcesv1alpha1.SchemeGroupVersion.String(), "AgentInvocation"
		enc := json.NewEncoder(streams.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(result)
	case "yaml":
		result.APIVersion, result.Kind = subresourcesv1alpha1.SchemeGroupVersion.String(), "AgentInvocation"
		data, err := yaml.Marshal(result)
		if err != nil {
			return err
		}
		_, err = streams.Out.Write(data)
		return err
	}

	st := result.Status
	if o.dryRun || !o.wait {
		suffix := "created"
		if o.dryRun {
			suffix = "created (server dry run)"
		}
		fmt.Fprintf(streams.Out, "agentrun.agentkube.io/%s %s\n", st.RunName, suffix)
		return nil
	}
	switch st.Phase {
	case agentkubev1alpha1.AgentRunPhaseSucceeded, agentkubev1alpha1.AgentRunPhaseFailed, agentkubev1alpha1.AgentRunPhaseTimedOut:
		fmt.Fprint(streams.Out, st.OutputTail)
		if st.OutputTail != "" && !strings.HasSuffix(st.OutputTail, "\n") {
			fmt.Fprintln(streams.Out)
		}
		if st.Phase != agentkubev1alpha1.AgentRunPhaseSucceeded {
			fmt.Fprintf(streams.ErrOut, "agentrun.agentkube.io/%s %s: %s\n", st.RunName, st.Phase, st.Message)
		}
		if st.ExitCode != nil && *st.ExitCode != 0 {
			return &runExitError{code: int(*st.ExitCode)}
		}
		if st.Phase != agentkubev1alpha1.AgentRunPhaseSucceeded {
			return &runExitError{code: 1}
		}
		return nil
	default:
		fmt.Fprintf(streams.ErrOut, "agentrun.agentkube.io/%s is still %s; follow it with: kubectl agent logs %s -n %s --run %s -f\n",
			st.RunName, st.Phase, name, ns, st.RunName)
		return nil
	}
}
