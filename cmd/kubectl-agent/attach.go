package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/remotecommand"
)

func newAttachCommand(flags clientFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "attach NAME",
		Short: "Open an interactive terminal in an Agent's runtime",
		Long: `Open an interactive terminal in the Agent's runtime (agents/NAME/attach, the
v5.channel.k8s.io WebSocket protocol). The local terminal is put in raw mode and its size
follows the window. The session ends when the remote program exits; its exit code becomes
this command's.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, err := flags.namespace()
			if err != nil {
				return err
			}
			config, client, err := flags.clients()
			if err != nil {
				return err
			}
			stdin, ok := streams.In.(*os.File)
			tty := ok && term.IsTerminal(int(stdin.Fd()))
			req := client.SubresourcesV1alpha1().RESTClient().Post().
				Namespace(ns).Resource("agents").Name(args[0]).SubResource("attach").
				Param("stdin", "true").Param("stdout", "true")
			if tty {
				req = req.Param("tty", "true")
			} else {
				req = req.Param("stderr", "true")
			}
			exec, err := remotecommand.NewWebSocketExecutor(config, "GET", req.URL().String())
			if err != nil {
				return fmt.Errorf("preparing the WebSocket connection: %w", err)
			}
			opts := remotecommand.StreamOptions{Stdin: streams.In, Stdout: streams.Out, Tty: tty}
			if !tty {
				opts.Stderr = streams.ErrOut
				return exec.StreamWithContext(cmd.Context(), opts)
			}

			fd := int(stdin.Fd())
			state, err := term.MakeRaw(fd)
			if err != nil {
				return fmt.Errorf("putting the terminal in raw mode: %w", err)
			}
			defer func() { _ = term.Restore(fd, state) }()
			sizes := newWindowSizeQueue(fd)
			defer sizes.stop()
			opts.TerminalSizeQueue = sizes
			err = exec.StreamWithContext(cmd.Context(), opts)
			if err != nil && errors.Is(cmd.Context().Err(), err) {
				return nil
			}
			return err
		},
	}
	return cmd
}

// windowSizeQueue reports the local terminal's size at start and on every SIGWINCH.
type windowSizeQueue struct {
	fd    int
	sizes chan remotecommand.TerminalSize
	winch chan os.Signal
	done  chan struct{}
}

func newWindowSizeQueue(fd int) *windowSizeQueue {
	q := &windowSizeQueue{
		fd:    fd,
		sizes: make(chan remotecommand.TerminalSize, 1),
		winch: make(chan os.Signal, 1),
		done:  make(chan struct{}),
	}
	signal.Notify(q.winch, syscall.SIGWINCH)
	q.push()
	go func() {
		for {
			select {
			case <-q.winch:
				q.push()
			case <-q.done:
				return
			}
		}
	}()
	return q
}

// push queues the current size, replacing a size not yet sent: only the latest matters.
func (q *windowSizeQueue) push() {
	w, h, err := term.GetSize(q.fd)
	if err != nil {
		return
	}
	size := remotecommand.TerminalSize{Width: uint16(w), Height: uint16(h)}
	select {
	case <-q.sizes:
	default:
	}
	q.sizes <- size
}

// Next implements remotecommand.TerminalSizeQueue.
func (q *windowSizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case size := <-q.sizes:
		return &size
	case <-q.done:
		return nil
	}
}

func (q *windowSizeQueue) stop() {
	signal.Stop(q.winch)
	close(q.done)
}
