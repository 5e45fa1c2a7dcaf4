package tunnel

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Trimming objects to what the dashboard shows.
//
// The cluster view is readable by every member of the tenant with
// agents:read, and it lives in exo-app's memory. Whole objects would carry
// what neither should: literal env values (spec.env, the pod's containers),
// run inputs and arguments, the run's output, annotations (kubectl's
// last-applied-configuration repeats the whole spec, env included) and
// managedFields. So an object is reduced to an allow-list of the fields the
// dashboard reads (pkg/platform/agentkube/dashboard.go and the agents page
// of pkg/platform/ui), with strings and lists capped. The operator trims
// before sending (pkg/connect); exo-app trims again on receipt, so an old or
// hostile operator cannot make it store more.

// Caps on trimmed values: every string the dashboard shows is short, and
// conditions are a handful.
const (
	MaxTrimmedString = 1024
	MaxTrimmedItems  = 16
)

// field is an allow-list: a nil value keeps the field's scalar value
// (strings capped), a non-nil one descends into an object, or into every
// item of a list of objects.
type field map[string]field

var (
	scalar = field(nil)

	metadataFields = field{
		"name": scalar, "namespace": scalar, "uid": scalar, "resourceVersion": scalar,
		"generation": scalar, "creationTimestamp": scalar, "deletionTimestamp": scalar,
	}
	conditionFields = field{
		"type": scalar, "status": scalar, "reason": scalar, "message": scalar,
		"lastTransitionTime": scalar, "observedGeneration": scalar,
	}
	commonStatus = field{"phase": scalar, "observedGeneration": scalar, "conditions": conditionFields}

	trimFields = map[string]field{
		"Agent": {
			"metadata": metadataFields,
			"spec":     {"runtime": scalar, "mode": scalar, "paused": scalar, "image": scalar, "schedule": scalar},
			"status": with(commonStatus, field{
				"ready": scalar, "podName": scalar, "image": scalar, "lastRun": scalar,
				"lastScheduleTime": scalar, "nextScheduleTime": scalar,
			}),
		},
		"AgentRun": {
			"metadata": metadataFields,
			// Never input, args or requester: what a user asked an agent is
			// theirs, not every member's.
			"spec": {"agentRef": {"name": scalar}, "trigger": scalar, "timeout": scalar},
			// Never outputTail: a run's output goes to whoever invoked it.
			"status": with(commonStatus, field{
				"podName": scalar, "startTime": scalar, "completionTime": scalar,
				"exitCode": scalar, "signal": scalar, "message": scalar,
			}),
		},
		"Pod": {
			"metadata": metadataFields,
			"status": {
				"phase": scalar, "conditions": conditionFields,
				"containerStatuses": {"name": scalar, "ready": scalar, "restartCount": scalar},
			},
		},
	}
	// Tool, MCP, LLMGateway, Claw and kinds added later: their name and
	// state; the dashboard shows nothing of their spec.
	defaultFields = field{"metadata": metadataFields, "status": commonStatus}
)

func with(a, b field) field {
	out := field{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// Trim returns obj (one Kubernetes object as JSON) reduced to the fields
// the dashboard shows for kind. Nil in, nil out.
func Trim(kind string, obj json.RawMessage) (json.RawMessage, error) {
	if len(obj) == 0 {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(obj, &m); err != nil {
		return nil, fmt.Errorf("trim %s: %w", kind, err)
	}
	fields, ok := trimFields[kind]
	if !ok {
		fields = defaultFields
	}
	b, err := json.Marshal(trimObject(m, fields))
	if err != nil {
		return nil, fmt.Errorf("trim %s: %w", kind, err)
	}
	return b, nil
}

// TrimObject trims o.Object in place (see Trim).
func TrimObject(o *Object) error {
	b, err := Trim(o.Kind, o.Object)
	if err != nil {
		return err
	}
	o.Object = b
	return nil
}

func trimObject(m map[string]any, fields field) map[string]any {
	out := make(map[string]any, len(fields))
	for k, sub := range fields {
		v, ok := m[k]
		if !ok {
			continue
		}
		if t, ok := trimValue(v, sub); ok {
			out[k] = t
		}
	}
	return out
}

func trimValue(v any, sub field) (any, bool) {
	if sub == nil {
		switch x := v.(type) {
		case string:
			return capString(x), true
		case bool, float64, nil:
			return x, true
		}
		return nil, false // an object or a list where a scalar belongs
	}
	switch x := v.(type) {
	case map[string]any:
		return trimObject(x, sub), true
	case []any:
		out := make([]any, 0, min(len(x), MaxTrimmedItems))
		for _, it := range x[:min(len(x), MaxTrimmedItems)] {
			if m, ok := it.(map[string]any); ok {
				out = append(out, trimObject(m, sub))
			}
		}
		return out, true
	}
	return nil, false
}

// capString cuts s to MaxTrimmedString bytes at a UTF-8 boundary.
func capString(s string) string {
	if len(s) <= MaxTrimmedString {
		return s
	}
	n := MaxTrimmedString
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
