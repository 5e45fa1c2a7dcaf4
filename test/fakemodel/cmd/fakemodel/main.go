// Command fakemodel serves test/fakemodel's fake model API on a port: the
// upstream of coding-agent CLIs run by hand or by tests that start it as a
// process, and later of the LLM gateway's tests. Every flag is also a
// FAKEMODEL_* variable. It logs one JSON line per request on stderr and
// serves the request log at /_fakemodel/requests.
//
//	fakemodel --listen 127.0.0.1:18080 --bodies /tmp/bodies --fault rate-limit:2s
//	ANTHROPIC_BASE_URL=http://127.0.0.1:18080 ANTHROPIC_API_KEY=fake claude -p <<<'say hi'
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/exo-in-go/exo/pkg/cmd/options"
	"github.com/exo-in-go/exo/test/fakemodel"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "fakemodel:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	s := options.New("fakemodel", "FAKEMODEL_")
	s.Description = "fakemodel: a deterministic model API (Anthropic, OpenAI Responses and Chat Completions, Gemini) for tests."
	fs := s.Flags()
	listen := fs.String("listen", "127.0.0.1:18080", "address to serve on")
	bodies := fs.String("bodies", "", "directory that receives every request body as NNNN.json")
	faults := fs.StringArray("fault", nil, "fault for the next model request, in order: rate-limit[:2s], server-error, cut-stream, slow-first-token:3s (repeatable)")
	finish := fs.StringSlice("finish-tools", fakemodel.DefaultFinishTools, "tools the model calls whenever they are offered")
	s.ListVariable("fault", ",")
	if err := s.Parse(args, os.LookupEnv); err != nil {
		return err
	}
	injected, err := fakemodel.ParseFaults(*faults)
	if err != nil {
		return err
	}
	if *bodies != "" {
		if err := os.MkdirAll(*bodies, 0o755); err != nil {
			return fmt.Errorf("bodies directory: %w", err)
		}
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	srv := fakemodel.New(fakemodel.Options{FinishTools: *finish, BodyDir: *bodies, Log: log})
	srv.Inject(injected...)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(shutdown)
	}()
	log.Info("Serving", "address", ln.Addr().String())
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
