package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/klog/v2"

	agentletclient "github.com/exo-in-go/exo/pkg/agentlet/client"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/apis/subresources"
	"github.com/exo-in-go/exo/pkg/apis/subresources/validation"
	agentkubeclient "github.com/exo-in-go/exo/pkg/generated/clientset/versioned/typed/agentkube/v1alpha1"
)

// runStartPoll is how often a followed log waits for a run the agentlet has not started yet.
const runStartPoll = 500 * time.Millisecond

// LogREST is agents/log: the output of one of the Agent's runs, streamed from its agentlet.
// `log` is one of the subresource names kube-apiserver treats as long-running, so a followed
// stream is not cut at the 60 s request timeout.
type LogREST struct {
	agents     AgentReader
	runs       agentkubeclient.AgentRunsGetter
	locator    Locator
	streams    *StreamLimiter
	httpClient *http.Client
}

var (
	_ rest.Storage   = &LogREST{}
	_ rest.Scoper    = &LogREST{}
	_ rest.Connecter = &LogREST{}
)

// NewLogREST returns the agents/log storage. httpClient talks to agentlets and must not set
// a Timeout, which would cut followed streams; nil uses http.DefaultClient.
func NewLogREST(agents AgentReader, runs agentkubeclient.AgentRunsGetter, locator Locator, streams *StreamLimiter, httpClient *http.Client) *LogREST {
	return &LogREST{agents: agents, runs: runs, locator: locator, streams: streams, httpClient: httpClient}
}

// New implements rest.Storage.
func (r *LogREST) New() runtime.Object { return &subresources.AgentLogOptions{} }

// Destroy implements rest.Storage.
func (r *LogREST) Destroy() {}

// NamespaceScoped implements rest.Scoper.
func (r *LogREST) NamespaceScoped() bool { return true }

// NewConnectOptions implements rest.Connecter: the options come from the query string.
func (r *LogREST) NewConnectOptions() (runtime.Object, bool, string) {
	return &subresources.AgentLogOptions{}, false, ""
}

// ConnectMethods implements rest.Connecter.
func (r *LogREST) ConnectMethods() []string { return []string{http.MethodGet} }

// Connect implements rest.Connecter. Everything that can fail with a clean status (the
// Agent, the run, the agentlet's address and the stream itself) is settled here, before the
// first byte of output is written.
func (r *LogREST) Connect(ctx context.Context, name string, options runtime.Object, responder rest.Responder) (http.Handler, error) {
	opts, ok := options.(*subresources.AgentLogOptions)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid options %T", options))
	}
	if errs := validation.ValidateAgentLogOptions(opts); len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: subresources.GroupName, Kind: "AgentLogOptions"}, name, errs)
	}
	namespace := genericapirequest.NamespaceValue(ctx)
	agent, err := getAgent(ctx, r.agents, namespace, name)
	if err != nil {
		return nil, err
	}
	run, err := r.selectRun(ctx, agent, opts.Run)
	if err != nil {
		return nil, err
	}
	release, err := r.streams.TryAcquire()
	if err != nil {
		return nil, err
	}
	ep, err := r.locator.Locate(ctx, agent)
	if err != nil {
		release()
		return nil, err
	}
	client, err := ep.Client(r.httpClient)
	if err != nil {
		release()
		return nil, apierrors.NewInternalError(err)
	}
	runID := run.Name
	if run.Status.RunID != "" {
		runID = run.Status.RunID
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		defer release()
		r.stream(w, req, responder, client, run, runID, opts)
	}), nil
}

// selectRun returns the named run of the Agent, or its newest run.
func (r *LogREST) selectRun(ctx context.Context, agent *agentkubev1alpha1.Agent, name string) (*agentkubev1alpha1.AgentRun, error) {
	runs := r.runs.AgentRuns(agent.Namespace)
	if name != "" {
		run, err := runs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		if run.Spec.AgentRef.Name != agent.Name {
			return nil, apierrors.NewNotFound(agentkubev1alpha1.Resource("agentruns"), name)
		}
		return run, nil
	}
	// The newest run, not only status.lastRun: an invoked run exists before the
	// controller records it on the Agent, and `invoke` then `logs` must find it.
	list, err := runs.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing AgentRuns of %s/%s: %w", agent.Namespace, agent.Name, err)
	}
	var newest *agentkubev1alpha1.AgentRun
	for i := range list.Items {
		run := &list.Items[i]
		if run.Spec.AgentRef.Name != agent.Name {
			continue
		}
		if newest == nil || newest.CreationTimestamp.Before(&run.CreationTimestamp) ||
			(newest.CreationTimestamp.Equal(&run.CreationTimestamp) && run.Name == agent.Status.LastRun) {
			newest = run
		}
	}
	if newest == nil {
		return nil, apierrors.NewNotFound(agentkubev1alpha1.Resource("agentruns"), agent.Name+" has no runs yet; invoke it first")
	}
	return newest, nil
}

func (r *LogREST) stream(w http.ResponseWriter, req *http.Request, responder rest.Responder, client *agentletclient.Client, run *agentkubev1alpha1.AgentRun, runID string, opts *subresources.AgentLogOptions) {
	ctx := req.Context()
	logger := klog.FromContext(ctx).WithValues("agentRun", klog.KObj(run))
	out, err := r.openOutput(ctx, client, run, runID, opts.Follow)
	if err != nil {
		responder.Error(err)
		return
	}
	defer out.Close()

	var src io.Reader = out
	if opts.LimitBytes != nil {
		src = io.LimitReader(out, *opts.LimitBytes)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	flusher := http.NewResponseController(w)
	_ = flusher.Flush() // let the client see the stream is open before the first line
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				logger.V(4).Info("Log client went away", "err", werr)
				return
			}
			// Flush every read: output arrives line by line and a follower wants it now.
			_ = flusher.Flush()
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				logger.Info("Agentlet output stream broke off", "err", err)
			}
			return
		}
	}
}

// openOutput opens the run's output. A followed run that the agentlet does not know yet
// (the AgentRun was just created and the controller has not started it) is waited for, so
// `invoke` immediately followed by `logs -f` works.
func (r *LogREST) openOutput(ctx context.Context, client *agentletclient.Client, run *agentkubev1alpha1.AgentRun, runID string, follow bool) (*agentletclient.Output, error) {
	for {
		out, err := client.StreamOutput(ctx, runID, agentletclient.OutputOptions{Follow: follow})
		if err == nil {
			return out, nil
		}
		if !agentletclient.IsNotFound(err) {
			return nil, serviceUnavailable(run.Spec.AgentRef.Name, fmt.Sprintf("the Agent's agentlet did not serve the output of run %s: %v", run.Name, err))
		}
		if !follow || runFinished(run) {
			return nil, apierrors.NewNotFound(agentkubev1alpha1.Resource("agentruns"),
				run.Name+": the agentlet has no output for this run (it has not started, or the Agent's pod restarted since)")
		}
		select {
		case <-ctx.Done():
			return nil, apierrors.NewTimeoutError("the run did not start", 0)
		case <-time.After(runStartPoll):
		}
		// Re-read the run so one that ended without ever starting stops the wait.
		if latest, err := r.runs.AgentRuns(run.Namespace).Get(ctx, run.Name, metav1.GetOptions{}); err == nil {
			run = latest
		}
	}
}
