package schedule

import agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"

// Condition types and reasons live in pkg/apis/agentkube/v1alpha1. These
// aliases keep the manager's integration tests (pkg/manager), which still name
// them through this package, compiling; delete this file once they use the API
// package's names.
const (
	ReasonArmed     = agentkubev1alpha1.ReasonArmed
	ReasonRunActive = agentkubev1alpha1.ReasonPreviousRunActive
)
