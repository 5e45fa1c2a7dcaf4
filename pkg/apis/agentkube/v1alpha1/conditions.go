package v1alpha1

// Condition types and reasons the agentkube controllers write into
// status.conditions (metav1.Condition), and the reasons of the events they
// record. They are part of the API: clients may match on them. A reason is
// CamelCase and says what the user should look at; the condition's message has
// the details. The constants are untyped strings because metav1.Condition's
// Type and Reason are plain strings.

// Condition types every kind reports.
const (
	// ConditionReady is True when the object does what its spec asks.
	ConditionReady = "Ready"
	// ConditionReconciled is False when the controller could not apply the spec; its
	// reason and message say what the user must fix.
	ConditionReconciled = "Reconciled"
)

// Agent condition types besides Ready and Reconciled.
const (
	// ConditionScheduled reports whether spec.schedule is armed and when it fires next.
	// Absent when the Agent has no schedule.
	ConditionScheduled = "Scheduled"
)

// AgentRun condition types.
const (
	// ConditionStarted is True once the agentlet accepted the run; while False its
	// reason says what the run waits for.
	ConditionStarted = "Started"
	// ConditionComplete is True once the run reached a terminal phase; its reason says
	// why it ended.
	ConditionComplete = "Complete"
)

// Tool condition types besides Ready and Reconciled.
const (
	// ConditionProbed reports the result of the connectivity check (spec.probe).
	ConditionProbed = "Probed"
	// ConditionPermissionsProvisioned reports the Job that provisions spec.permissions.
	ConditionPermissionsProvisioned = "PermissionsProvisioned"
)

// Reasons more than one kind uses.
const (
	// ReasonUpToDate (Reconciled=True): the children match the spec.
	ReasonUpToDate = "UpToDate"
	// ReasonSecretNotFound (Reconciled=False on an Agent or Tool): a Secret the spec
	// references does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretKeyNotFound (Reconciled=False on an Agent or Tool): a referenced
	// Secret lacks the key.
	ReasonSecretKeyNotFound = "SecretKeyNotFound"
	// ReasonAgentPaused: the Agent has spec.paused. On an AgentRun (Complete=False,
	// phase Failed) the run was not started; on an Agent (Scheduled=False) the
	// schedule is disarmed.
	ReasonAgentPaused = "AgentPaused"
)

// Agent reasons of the Reconciled and Ready conditions, and of the Agent's events.
const (
	// ReasonConfigMapNotFound (Reconciled=False): the ConfigMap of goal.configMapKeyRef
	// does not exist.
	ReasonConfigMapNotFound = "ConfigMapNotFound"
	// ReasonConfigMapKeyNotFound (Reconciled=False): that ConfigMap lacks the key.
	ReasonConfigMapKeyNotFound = "ConfigMapKeyNotFound"
	// ReasonImageRequired (Reconciled=False): no image is known for the runtime
	// (Custom without spec.image or AGENTKUBE_IMAGE_CUSTOM).
	ReasonImageRequired = "ImageRequired"
	// ReasonPodConflict (Reconciled=False): a pod of the Agent's name exists that the
	// Agent does not own.
	ReasonPodConflict = "PodConflict"
	// ReasonPodInvalid (Reconciled=False, and a Warning event): the API server refused
	// the Agent's pod (invalid, or forbidden by a quota or policy).
	ReasonPodInvalid = "PodInvalid"

	// ReasonPodReady (Ready=True): the pod is ready.
	ReasonPodReady = "PodReady"
	// ReasonPodPending (Ready=False): the pod is being created or is not ready yet.
	ReasonPodPending = "PodPending"
	// ReasonPodTerminating (Ready=False): the pod is being deleted; a successor follows.
	ReasonPodTerminating = "PodTerminating"
	// ReasonImagePullBackOff (Ready=False, phase Failed): a container's image cannot be
	// pulled.
	ReasonImagePullBackOff = "ImagePullBackOff"
	// ReasonCrashLoopBackOff (Ready=False, phase Failed): a container keeps crashing.
	ReasonCrashLoopBackOff = "CrashLoopBackOff"
	// ReasonCreateContainerConfigError (Ready=False, phase Failed): a container cannot
	// be created from its configuration.
	ReasonCreateContainerConfigError = "CreateContainerConfigError"
	// ReasonUnschedulable (Ready=False): no node can take the pod.
	ReasonUnschedulable = "Unschedulable"

	// ReasonPodCreated (event): the Agent's pod was created.
	ReasonPodCreated = "PodCreated"
	// ReasonPodRecreated (event): the pod was created again after it was removed.
	ReasonPodRecreated = "PodRecreated"
	// ReasonPodReplaced (event): the pod was deleted because its spec changed or it
	// ended; the next reconcile creates its successor.
	ReasonPodReplaced = "PodReplaced"
	// ReasonToolNotFound (Warning event): a Tool in spec.tools does not exist.
	ReasonToolNotFound = "ToolNotFound"
	// ReasonAgentletCertificateIssued (event): the agentlet's serving certificate was
	// issued or renewed.
	ReasonAgentletCertificateIssued = "AgentletCertificateIssued"
)

// Agent reasons of the Scheduled condition and of the schedule's events.
const (
	// ReasonArmed (Scheduled=True): the schedule waits for its next occurrence.
	ReasonArmed = "Armed"
	// ReasonInvalidSchedule (Scheduled=False): spec.schedule does not parse.
	ReasonInvalidSchedule = "InvalidSchedule"
	// ReasonPreviousRunActive (Scheduled=True): a due occurrence waits for the Agent's
	// unfinished run, within the starting deadline.
	ReasonPreviousRunActive = "PreviousRunActive"
	// ReasonScheduledRunCreated (event): the schedule created an AgentRun.
	ReasonScheduledRunCreated = "ScheduledRunCreated"
	// ReasonMissedSchedule (Warning event): occurrences older than the starting
	// deadline were skipped.
	ReasonMissedSchedule = "MissedSchedule"
)

// AgentRun reasons. While a run waits they are on Started=False; once it ends,
// on Complete (and in status.message).
const (
	// ReasonWaitingForAgentPod (Started=False): the Agent's pod does not exist or
	// is not ready.
	ReasonWaitingForAgentPod = "WaitingForAgentPod"
	// ReasonWaitingForRun (Started=False): an older run of the same Agent comes first.
	ReasonWaitingForRun = "WaitingForRun"
	// ReasonAgentletBusy (Started=False): the agentlet is running something else.
	ReasonAgentletBusy = "AgentletBusy"
	// ReasonStarted (Started=True, and an event): the agentlet accepted the run.
	ReasonStarted = "Started"

	// ReasonSucceeded (phase Succeeded): the run exited 0.
	ReasonSucceeded = "Succeeded"
	// ReasonRunFailed (phase Failed): the run exited non-zero or by a signal.
	ReasonRunFailed = "RunFailed"
	// ReasonTimedOut (phase TimedOut): the run exceeded spec.timeout and was killed.
	ReasonTimedOut = "TimedOut"
	// ReasonNotStartedBeforeTimeout (phase TimedOut): the run could not start before
	// spec.timeout expired.
	ReasonNotStartedBeforeTimeout = "NotStartedBeforeTimeout"
	// ReasonCanceled (phase Failed): the agentlet canceled the run (for example because
	// its pod is shutting down).
	ReasonCanceled = "Canceled"
	// ReasonAgentNotFound (phase Failed): the AgentRun's Agent does not exist.
	ReasonAgentNotFound = "AgentNotFound"
	// ReasonAgentPodGone (phase Failed): the pod the run was started in is gone.
	ReasonAgentPodGone = "AgentPodGone"
	// ReasonAgentletLostRun (phase Failed): the agentlet does not know the run any
	// more: it or its pod restarted.
	ReasonAgentletLostRun = "AgentletLostRun"
	// ReasonAgentletRefused (phase Failed): the agentlet refused the run request
	// (400, 413, 422).
	ReasonAgentletRefused = "AgentletRefused"
	// ReasonAgentletUnreachable (phase Failed): the agentlet gave no answer until the
	// run's timeout plus a grace period.
	ReasonAgentletUnreachable = "AgentletUnreachable"
)

// Tool reasons (Ready, Probed, PermissionsProvisioned; Reconciled uses the
// shared ones).
const (
	// ReasonProbeRunning (Probed=Unknown, Ready=False): the probe Job runs.
	ReasonProbeRunning = "ProbeRunning"
	// ReasonProbeSucceeded (Probed=True): the probe reached the target.
	ReasonProbeSucceeded = "ProbeSucceeded"
	// ReasonProbeFailed (Probed=False, Ready=False): the probe failed.
	ReasonProbeFailed = "ProbeFailed"
	// ReasonProvisioning (PermissionsProvisioned=Unknown): the permissions Job runs.
	ReasonProvisioning = "Provisioning"
	// ReasonProvisioned (PermissionsProvisioned=True): the permissions are in place.
	ReasonProvisioned = "Provisioned"
	// ReasonProvisioningFailed (PermissionsProvisioned=False): the permissions Job failed.
	ReasonProvisioningFailed = "ProvisioningFailed"
	// ReasonUnsupported (PermissionsProvisioned=False): the Tool's type has no
	// permissions provisioning.
	ReasonUnsupported = "Unsupported"
	// ReasonIdle (Ready=True): no session is open, so no bastion runs.
	ReasonIdle = "Idle"
	// ReasonBastionStarting (Ready=True): the bastion pod is starting.
	ReasonBastionStarting = "BastionStarting"
	// ReasonBastionReady (Ready=True): the bastion pod is ready.
	ReasonBastionReady = "BastionReady"
)

// Reasons of the MCP, LLMGateway and Claw kinds (a Deployment and a Service each).
const (
	// ReasonAvailable (Ready=True): every replica is up to date and available.
	ReasonAvailable = "Available"
	// ReasonScaledToZero (Ready=True): spec.replicas is 0.
	ReasonScaledToZero = "ScaledToZero"
	// ReasonProgressing (Ready=False): the Deployment is rolling out.
	ReasonProgressing = "Progressing"
	// ReasonProgressDeadlineExceeded (Ready=False, phase Failed): the rollout exceeded
	// the Deployment's progress deadline.
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// ReasonReplicaFailure (Ready=False, phase Failed): the Deployment cannot create
	// its pods.
	ReasonReplicaFailure = "ReplicaFailure"
	// ReasonInvalid (Reconciled=False, Ready=False): the spec has a problem only the
	// user can fix (for example a Claw package naming a registry not in the spec); no
	// Deployment is written.
	ReasonInvalid = "Invalid"
	// ReasonNameConflict (Reconciled=False, phase Failed): a Deployment or Service of
	// the object's name exists that the object does not control.
	ReasonNameConflict = "NameConflict"
)
