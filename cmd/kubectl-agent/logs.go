package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func newLogsCommand(flags clientFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var (
		run        string
		follow     bool
		limitBytes int64
	)
	cmd := &cobra.Command{
		Use:   "logs NAME [--run RUN] [-f]",
		Short: "Print or follow the output of an Agent's run",
		Long: `Print the output of one of the Agent's runs (GET agents/NAME/log): the newest run unless
--run names another. With -f the output is followed until the run ends, however long it
takes: log is a long-running subresource for kube-apiserver.`,
		Example: `  kubectl agent logs reviewer -f
  kubectl agent logs reviewer --run reviewer-x7k2p`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, err := flags.namespace()
			if err != nil {
				return err
			}
			_, client, err := flags.clients()
			if err != nil {
				return err
			}
			req := client.SubresourcesV1alpha1().RESTClient().Get().
				Namespace(ns).Resource("agents").Name(args[0]).SubResource("log")
			if run != "" {
				req = req.Param("run", run)
			}
			if follow {
				req = req.Param("follow", "true")
			}
			if limitBytes > 0 {
				req = req.Param("limitBytes", fmt.Sprint(limitBytes))
			}
			body, err := req.Stream(cmd.Context())
			if err != nil {
				return err
			}
			defer body.Close()
			_, err = io.Copy(streams.Out, body)
			if err != nil && cmd.Context().Err() != nil {
				return nil // interrupted by the user
			}
			return err
		},
	}
	cmd.Flags().StringVar(&run, "run", "", "The AgentRun whose output to print; the Agent's newest run when empty.")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "Follow the output until the run ends.")
	cmd.Flags().Int64Var(&limitBytes, "limit-bytes", 0, "Stop after this many bytes.")
	return cmd
}
