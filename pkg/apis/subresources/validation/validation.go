// Package validation checks subresources.agentkube.io requests before the server acts on
// them, so a bad request is answered with 422 and a field path instead of surfacing later as
// a failed AgentRun.
package validation

import (
	"fmt"

	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/exo-in-go/exo/pkg/apis/subresources"
)

const (
	// MaxInputBytes bounds AgentInvocation.Spec.Input. It matches the AgentRun CRD's
	// spec.input maxLength, so an invocation that passes here is never refused by the CRD.
	MaxInputBytes = 256 * 1024
	// MaxArgs bounds AgentInvocation.Spec.Args, as the AgentRun CRD's spec.args maxItems.
	MaxArgs = 256
	// MaxArgBytes bounds one argument: Linux refuses longer single argv strings.
	MaxArgBytes = 128 * 1024
)

// ValidateAgentInvocation checks the spec of an agents/invoke request.
func ValidateAgentInvocation(inv *subresources.AgentInvocation) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if w := inv.Spec.WaitSeconds; w < 0 || w > subresources.MaxWaitSeconds {
		errs = append(errs, field.Invalid(spec.Child("waitSeconds"), w,
			fmt.Sprintf("must be between 0 and %d: kube-apiserver ends requests after 60 seconds; follow longer runs with agents/log", subresources.MaxWaitSeconds)))
	}
	if inv.Spec.TimeoutSeconds < 0 {
		errs = append(errs, field.Invalid(spec.Child("timeoutSeconds"), inv.Spec.TimeoutSeconds, "must not be negative (0 uses the Agent's default)"))
	}
	if n := len(inv.Spec.Input); n > MaxInputBytes {
		errs = append(errs, field.TooLong(spec.Child("input"), "" /* not echoed: may be large */, MaxInputBytes))
	}
	if n := len(inv.Spec.Args); n > MaxArgs {
		errs = append(errs, field.TooMany(spec.Child("args"), n, MaxArgs))
	}
	for i, a := range inv.Spec.Args {
		if len(a) > MaxArgBytes {
			errs = append(errs, field.TooLong(spec.Child("args").Index(i), "", MaxArgBytes))
		}
	}
	return errs
}

// ValidateAgentLogOptions checks the query parameters of agents/log.
func ValidateAgentLogOptions(opts *subresources.AgentLogOptions) field.ErrorList {
	var errs field.ErrorList
	if opts.Run != "" {
		for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(opts.Run, false) {
			errs = append(errs, field.Invalid(field.NewPath("run"), opts.Run, msg))
		}
	}
	if opts.LimitBytes != nil && *opts.LimitBytes < 1 {
		errs = append(errs, field.Invalid(field.NewPath("limitBytes"), *opts.LimitBytes, "must be at least 1"))
	}
	return errs
}

// ValidateAgentAttachOptions checks the query parameters of agents/attach.
func ValidateAgentAttachOptions(opts *subresources.AgentAttachOptions) field.ErrorList {
	var errs field.ErrorList
	if !opts.Stdin && !opts.Stdout && !opts.Stderr {
		errs = append(errs, field.Required(field.NewPath("stdin"), "at least one of stdin, stdout or stderr must be true"))
	}
	if opts.TTY && opts.Stderr {
		// As kubelet's attach: a terminal merges stderr into stdout.
		errs = append(errs, field.Invalid(field.NewPath("stderr"), true, "stderr must be false when tty is true: the terminal merges it into stdout"))
	}
	return errs
}
