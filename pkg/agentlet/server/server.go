// Package server is the agentlet's HTTP API: runs, their output and
// recordings, attach, and health. Every route except /healthz requires the
// pod's bearer token.
package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/exo-in-go/exo/pkg/agentlet/adapter"
	"github.com/exo-in-go/exo/pkg/agentlet/api"
	"github.com/exo-in-go/exo/pkg/agentlet/attach"
	"github.com/exo-in-go/exo/pkg/agentlet/run"
)

// Server routes requests to the run manager and the attach handler.
type Server struct {
	runs          *run.Manager
	attach        *attach.Handler
	tokenDigest   [sha256.Size]byte
	maxInputBytes int64
	log           *slog.Logger
}

// New returns the API. token must not be empty.
func New(runs *run.Manager, attachHandler *attach.Handler, token string, maxInputBytes int64, log *slog.Logger) (*Server, error) {
	if token == "" {
		return nil, errors.New("server: an empty token would let anyone in")
	}
	return &Server{
		runs:          runs,
		attach:        attachHandler,
		tokenDigest:   sha256.Sum256([]byte(token)),
		maxInputBytes: maxInputBytes,
		log:           log,
	}, nil
}

// Handler returns the routed, authenticated HTTP handler.
func (s *Server) Handler() http.Handler {
	authed := http.NewServeMux()
	authed.HandleFunc("POST "+api.PathRuns, s.createRun)
	authed.HandleFunc("GET "+api.PathRuns, s.listRuns)
	authed.HandleFunc("GET "+api.PathRun, s.getRun)
	authed.HandleFunc("DELETE "+api.PathRun, s.cancelRun)
	authed.HandleFunc("POST "+api.PathCancel, s.cancelRun)
	authed.HandleFunc("GET "+api.PathOutput, s.runOutput)
	authed.HandleFunc("GET "+api.PathRecording, s.runRecording)
	authed.HandleFunc("GET "+api.PathSessionRecording, s.sessionRecording)
	authed.Handle("GET "+api.PathAttach, s.attach)
	authed.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})

	root := http.NewServeMux()
	root.HandleFunc("GET "+api.PathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	root.Handle("/", s.authenticate(authed))
	return root
}

// authenticate admits requests bearing the token. Both sides are hashed
// first so the comparison takes the same time whatever the length of the
// presented token.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		presented := sha256.Sum256([]byte(token))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(presented[:], s.tokenDigest[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="agentlet"`)
			api.WriteError(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "a valid bearer token is required")
			s.log.Info("Refused unauthenticated request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) createRun(w http.ResponseWriter, r *http.Request) {
	// Refuse an oversized body before reading any of it when its length is
	// declared; MaxBytesReader catches the rest (chunked bodies).
	if r.ContentLength > s.maxInputBytes {
		s.tooLarge(w)
		return
	}
	var req api.RunRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.maxInputBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.tooLarge(w)
			return
		}
		api.WriteError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "invalid run request: "+err.Error())
		return
	}
	st, created, err := s.runs.Start(req)
	var busy *run.BusyError
	switch {
	case errors.As(err, &busy):
		status := api.NewStatus(http.StatusConflict, metav1.StatusReasonConflict, err.Error())
		status.Details = &metav1.StatusDetails{Name: busy.ActiveRun, Kind: "run"}
		api.WriteStatus(w, status)
	case errors.Is(err, adapter.ErrPromptTooLong):
		api.WriteError(w, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge, err.Error())
	case errors.Is(err, run.ErrInvalid):
		api.WriteError(w, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, err.Error())
	case errors.Is(err, run.ErrShuttingDown):
		api.WriteError(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, err.Error())
	case err != nil:
		s.log.Error("Starting a run failed", "err", err)
		api.WriteError(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
	case created:
		w.Header().Set("Location", "/v1/runs/"+st.ID)
		writeJSON(w, http.StatusCreated, st)
	default:
		writeJSON(w, http.StatusOK, st)
	}
}

func (s *Server) tooLarge(w http.ResponseWriter) {
	api.WriteError(w, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge,
		fmt.Sprintf("the run request is larger than %d bytes", s.maxInputBytes))
}

func (s *Server) listRuns(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, api.RunList{Items: s.runs.List()})
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	st, err := s.runs.Get(r.PathValue("id"))
	if err != nil {
		s.notFound(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// cancelRun answers 202: the process group is being stopped and the run
// reaches Canceled once it has.
func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	st, err := s.runs.Cancel(r.PathValue("id"), "requested through the API")
	if err != nil {
		s.notFound(w, err)
		return
	}
	code := http.StatusAccepted
	if st.Phase.Finished() {
		code = http.StatusOK
	}
	writeJSON(w, code, st)
}

// runOutput streams the run's raw output. With follow=true the response
// stays open until the run ends; offset resumes an interrupted stream.
func (s *Server) runOutput(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	follow, _ := strconv.ParseBool(q.Get("follow"))
	var offset int64
	if v := q.Get("offset"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			api.WriteError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "offset must be a non-negative integer")
			return
		}
		offset = n
	}
	reader, start, err := s.runs.Output(r.Context(), r.PathValue("id"), offset, follow)
	if err != nil {
		s.notFound(w, err)
		return
	}
	defer reader.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set(api.HeaderOutputOffset, strconv.FormatInt(start, 10))
	w.WriteHeader(http.StatusOK)
	flusher := http.NewResponseController(w)
	_ = flusher.Flush() // let a follower see the headers before any output
	buf := make([]byte, 32<<10)
	for {
		n, err := reader.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if follow {
				_ = flusher.Flush()
			}
		}
		if err != nil {
			if err != io.EOF && r.Context().Err() == nil {
				s.log.Warn("Streaming run output failed", "run", r.PathValue("id"), "err", err)
			}
			return
		}
	}
}

func (s *Server) runRecording(w http.ResponseWriter, r *http.Request) {
	path, err := s.runs.RecordingPath(r.PathValue("id"))
	if err != nil {
		s.notFound(w, err)
		return
	}
	serveRecording(w, r, path)
}

func (s *Server) sessionRecording(w http.ResponseWriter, r *http.Request) {
	path, err := s.attach.RecordingPath(r.PathValue("id"))
	if err != nil {
		api.WriteError(w, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("attach session %q not found", r.PathValue("id")))
		return
	}
	serveRecording(w, r, path)
}

// serveRecording sends an asciicast file as it is now; a recording still
// being written is a valid prefix, since events are whole lines.
func serveRecording(w http.ResponseWriter, r *http.Request, path string) {
	f, err := os.Open(path)
	if err != nil {
		api.WriteError(w, http.StatusNotFound, metav1.StatusReasonNotFound, "recording not found")
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", api.RecordingContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = io.Copy(w, f)
}

func (s *Server) notFound(w http.ResponseWriter, err error) {
	if errors.Is(err, run.ErrNotFound) {
		api.WriteError(w, http.StatusNotFound, metav1.StatusReasonNotFound, err.Error())
		return
	}
	s.log.Error("Request failed", "err", err)
	api.WriteError(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
