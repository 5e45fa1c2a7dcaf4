package fakemodel

import (
	"fmt"
	"strings"
	"time"
)

// FaultKind is a failure the server can inject into one model request.
type FaultKind string

const (
	// FaultRateLimit answers 429 with Retry-After: Duration (rounded up to
	// whole seconds).
	FaultRateLimit FaultKind = "rate-limit"
	// FaultServerError answers 500.
	FaultServerError FaultKind = "server-error"
	// FaultCutStream sends half of a streamed reply, then closes the
	// connection without ending the body. A non-streamed reply is unaffected.
	FaultCutStream FaultKind = "cut-stream"
	// FaultSlowFirstToken sends the status and headers, then waits Duration
	// before the first byte of the reply.
	FaultSlowFirstToken FaultKind = "slow-first-token"
)

// Fault is one injected failure.
type Fault struct {
	Kind     FaultKind
	Duration time.Duration
}

// ParseFault reads "KIND[:DURATION]": rate-limit:2s, server-error,
// cut-stream, slow-first-token:3s. A rate limit without a duration asks
// for a retry after one second.
func ParseFault(spec string) (Fault, error) {
	kind, dur, hasDur := strings.Cut(strings.TrimSpace(spec), ":")
	f := Fault{Kind: FaultKind(kind)}
	switch f.Kind {
	case FaultRateLimit, FaultSlowFirstToken:
		if !hasDur {
			if f.Kind == FaultSlowFirstToken {
				return Fault{}, fmt.Errorf("fault %q: %s needs a duration (slow-first-token:3s)", spec, kind)
			}
			f.Duration = time.Second
			return f, nil
		}
		d, err := time.ParseDuration(dur)
		if err != nil || d < 0 {
			return Fault{}, fmt.Errorf("fault %q: want a non-negative duration after the colon", spec)
		}
		f.Duration = d
	case FaultServerError, FaultCutStream:
		if hasDur {
			return Fault{}, fmt.Errorf("fault %q: %s takes no duration", spec, kind)
		}
	default:
		return Fault{}, fmt.Errorf("fault %q: unknown kind (want %s, %s, %s or %s)", spec,
			FaultRateLimit, FaultServerError, FaultCutStream, FaultSlowFirstToken)
	}
	return f, nil
}

// ParseFaults reads every spec, reporting the first that does not parse.
func ParseFaults(specs []string) ([]Fault, error) {
	faults := make([]Fault, 0, len(specs))
	for _, s := range specs {
		f, err := ParseFault(s)
		if err != nil {
			return nil, err
		}
		faults = append(faults, f)
	}
	return faults, nil
}
