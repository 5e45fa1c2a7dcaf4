package agentrun

import agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"

// Condition types and reasons live in pkg/apis/agentkube/v1alpha1. These
// aliases keep the manager's integration tests (pkg/manager), which still name
// them through this package, compiling; delete this file once they use the API
// package's names.
const (
	ConditionComplete     = agentkubev1alpha1.ConditionComplete
	ReasonRunFailed       = agentkubev1alpha1.ReasonRunFailed
	ReasonAgentPaused     = agentkubev1alpha1.ReasonAgentPaused
	ReasonAgentNotFound   = agentkubev1alpha1.ReasonAgentNotFound
	ReasonAgentletLostRun = agentkubev1alpha1.ReasonAgentletLostRun
)
