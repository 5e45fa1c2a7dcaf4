// Package client talks to an agentlet's HTTP API. The manager's AgentRun
// controller uses it to start runs, poll them, stream their output and
// cancel them.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/exo-in-go/exo/pkg/agentlet/api"
)

// Client calls one agentlet. It is safe for concurrent use.
type Client struct {
	baseURL *url.URL
	token   string
	http    *http.Client
}

// New returns a client for the agentlet at baseURL (for example
// "http://10.0.0.7:8090"). httpClient may be nil for http.DefaultClient; it
// should not set a Timeout, which would cut off followed output streams:
// bound calls with their context instead.
func New(baseURL, token string, httpClient *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("agentlet client: parse base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("agentlet client: base URL %q must be http or https", baseURL)
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Client{baseURL: u, token: token, http: httpClient}, nil
}

// StatusError is a non-2xx answer. Status is the agentlet's metav1.Status.
type StatusError struct {
	Status metav1.Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("agentlet: %d %s: %s", e.Status.Code, e.Status.Reason, e.Status.Message)
}

// IsConflict reports whether err means another run is in progress.
func IsConflict(err error) bool { return hasCode(err, http.StatusConflict) }

// IsNotFound reports whether err means the run does not exist (for example
// because the agentlet restarted and forgot it).
func IsNotFound(err error) bool { return hasCode(err, http.StatusNotFound) }

// IsTooLarge reports whether err means the input was refused for its size.
func IsTooLarge(err error) bool { return hasCode(err, http.StatusRequestEntityTooLarge) }

func hasCode(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && int(se.Status.Code) == code
}

// StartRun starts a run. Giving req.ID makes the call idempotent: a retry
// returns the run the first call started (created is false then).
func (c *Client) StartRun(ctx context.Context, req api.RunRequest) (run api.Run, created bool, err error) {
	body, err := json.Marshal(req)
	if err != nil {
		return api.Run{}, false, fmt.Errorf("agentlet client: encode run request: %w", err)
	}
	httpReq, err := c.request(ctx, http.MethodPost, api.PathRuns, nil, bytes.NewReader(body))
	if err != nil {
		return api.Run{}, false, err
	}
	httpReq.Header.Set("Content-Type", "application/json")
	// Ask before sending a large body: a refusal (413, 409) then costs no
	// upload, and arrives cleanly instead of as a reset connection.
	httpReq.Header.Set("Expect", "100-continue")
	resp, err := c.http.Do(httpReq)
	if err != nil {
		return api.Run{}, false, fmt.Errorf("agentlet client: start run: %w", err)
	}
	defer resp.Body.Close()
	if err := decode(resp, &run, http.StatusCreated, http.StatusOK); err != nil {
		return api.Run{}, false, fmt.Errorf("start run: %w", err)
	}
	return run, resp.StatusCode == http.StatusCreated, nil
}

// GetRun returns a run's status.
func (c *Client) GetRun(ctx context.Context, id string) (api.Run, error) {
	var run api.Run
	err := c.do(ctx, http.MethodGet, runPath(api.PathRun, id), nil, &run, http.StatusOK)
	if err != nil {
		return api.Run{}, fmt.Errorf("get run %s: %w", id, err)
	}
	return run, nil
}

// ListRuns returns the runs the agentlet remembers, newest first.
func (c *Client) ListRuns(ctx context.Context) ([]api.Run, error) {
	var list api.RunList
	if err := c.do(ctx, http.MethodGet, api.PathRuns, nil, &list, http.StatusOK); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return list.Items, nil
}

// Cancel asks the agentlet to stop a run; the run reaches Canceled once its
// process group has exited. Canceling a finished run is not an error.
func (c *Client) Cancel(ctx context.Context, id string) (api.Run, error) {
	var run api.Run
	err := c.do(ctx, http.MethodPost, runPath(api.PathCancel, id), nil, &run, http.StatusAccepted, http.StatusOK)
	if err != nil {
		return api.Run{}, fmt.Errorf("cancel run %s: %w", id, err)
	}
	return run, nil
}

// OutputOptions select what StreamOutput returns.
type OutputOptions struct {
	// Follow keeps the stream open until the run ends.
	Follow bool
	// Offset resumes from an absolute byte offset (see Output.Offset).
	Offset int64
}

// Output is a run's output stream. Close it when done.
type Output struct {
	io.ReadCloser
	// Offset is the absolute offset of the first byte; it is larger than
	// the requested offset when the output bound dropped older bytes.
	Offset int64
}

// StreamOutput returns the run's raw output. Cancel ctx or Close the
// result to stop following.
func (c *Client) StreamOutput(ctx context.Context, id string, opts OutputOptions) (*Output, error) {
	q := url.Values{}
	if opts.Follow {
		q.Set("follow", "true")
	}
	if opts.Offset > 0 {
		q.Set("offset", strconv.FormatInt(opts.Offset, 10))
	}
	resp, err := c.stream(ctx, runPath(api.PathOutput, id), q)
	if err != nil {
		return nil, fmt.Errorf("stream output of run %s: %w", id, err)
	}
	offset, _ := strconv.ParseInt(resp.Header.Get(api.HeaderOutputOffset), 10, 64)
	return &Output{ReadCloser: resp.Body, Offset: offset}, nil
}

// Recording returns a run's asciicast v2 recording.
func (c *Client) Recording(ctx context.Context, id string) (io.ReadCloser, error) {
	resp, err := c.stream(ctx, runPath(api.PathRecording, id), nil)
	if err != nil {
		return nil, fmt.Errorf("get recording of run %s: %w", id, err)
	}
	return resp.Body, nil
}

// SessionRecording returns an attach session's asciicast v2 recording.
func (c *Client) SessionRecording(ctx context.Context, sessionID string) (io.ReadCloser, error) {
	resp, err := c.stream(ctx, runPath(api.PathSessionRecording, sessionID), nil)
	if err != nil {
		return nil, fmt.Errorf("get recording of session %s: %w", sessionID, err)
	}
	return resp.Body, nil
}

func (c *Client) stream(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	req, err := c.request(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, statusError(resp)
	}
	return resp, nil
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, out any, okCodes ...int) error {
	req, err := c.request(ctx, method, path, q, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decode(resp, out, okCodes...)
}

func (c *Client) request(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Request, error) {
	u := c.baseURL.JoinPath(path)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("agentlet client: build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	return req, nil
}

func decode(resp *http.Response, out any, okCodes ...int) error {
	for _, code := range okCodes {
		if resp.StatusCode == code {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				return fmt.Errorf("decode response: %w", err)
			}
			return nil
		}
	}
	return statusError(resp)
}

// statusError reads the agentlet's metav1.Status, or makes one up from the
// HTTP status when the body is something else (a proxy's error page).
func statusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var st metav1.Status
	if json.Unmarshal(body, &st) != nil || st.Kind != "Status" {
		st = api.NewStatus(resp.StatusCode, metav1.StatusReasonUnknown, strings.TrimSpace(string(body)))
	}
	st.Code = int32(resp.StatusCode)
	return &StatusError{Status: st}
}

func runPath(pattern, id string) string {
	return strings.Replace(pattern, "{id}", url.PathEscape(id), 1)
}
