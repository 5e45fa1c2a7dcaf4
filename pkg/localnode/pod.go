//go:build linux

package localnode

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/exo-in-go/exo/pkg/localnode/internal/shim"
)

const hostIP = "127.0.0.1"

// Reasons localnode reports.
const (
	ReasonErrImagePull               = "ErrImagePull"
	ReasonCreateContainerConfigError = "CreateContainerConfigError"
	ReasonCreateContainerError       = "CreateContainerError"
	ReasonContainerCreating          = "ContainerCreating"
	ReasonPodInitializing            = "PodInitializing"
	ReasonCrashLoopBackOff           = "CrashLoopBackOff"
	ReasonStartError                 = "StartError"
	ReasonDeadlineExceeded           = "DeadlineExceeded"
	ReasonUnsupported                = "UnsupportedPodSpec"
)

// podRuntime runs one pod.
type podRuntime struct {
	n      *Node
	key    string
	uid    types.UID
	dir    string
	policy corev1.RestartPolicy

	ctx    context.Context // ends when the pod stops: deleted, finished, or localnode exits
	cancel context.CancelFunc

	mu           sync.Mutex
	pod          *corev1.Pod
	ip           netip.Addr
	startTime    metav1.Time
	initCs       []*containerRuntime
	appCs        []*containerRuntime
	sandboxReady bool
	initialized  bool
	terminal     bool
	phase        corev1.PodPhase // when terminal (or failed before starting)
	reason       string
	message      string
	stopping     bool
	deleting     bool
	conds        map[corev1.PodConditionType]corev1.PodCondition
	execs        map[*shim.Process]struct{}
	timers       map[string]*time.Timer

	stopOnce sync.Once
	done     chan struct{} // run has returned and every process has ended
	notifyCh chan struct{}
}

func (n *Node) newPodRuntime(pod *corev1.Pod) (*podRuntime, error) {
	p := &podRuntime{
		n:        n,
		key:      pod.Namespace + "/" + pod.Name,
		uid:      pod.UID,
		dir:      filepath.Join(n.stateDir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID)),
		pod:      pod.DeepCopy(),
		policy:   pod.Spec.RestartPolicy,
		conds:    map[corev1.PodConditionType]corev1.PodCondition{},
		execs:    map[*shim.Process]struct{}{},
		timers:   map[string]*time.Timer{},
		done:     make(chan struct{}),
		notifyCh: make(chan struct{}, 1),
	}
	p.ctx, p.cancel = context.WithCancel(n.ctx)
	p.startTime = metav1.Now()
	if pod.Status.StartTime != nil {
		p.startTime = *pod.Status.StartTime
	}
	prev := map[string]corev1.ContainerStatus{}
	for _, s := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		prev[s.Name] = s
	}
	for i := range pod.Spec.InitContainers {
		c := newContainerRuntime(p, &pod.Spec.InitContainers[i], true, prev[pod.Spec.InitContainers[i].Name])
		p.initCs = append(p.initCs, c)
	}
	for i := range pod.Spec.Containers {
		c := newContainerRuntime(p, &pod.Spec.Containers[i], false, prev[pod.Spec.Containers[i].Name])
		p.appCs = append(p.appCs, c)
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, err
	}

	// Problems that no retry can fix fail the pod at once.
	if reason, msg := n.checkPod(pod); reason != "" {
		p.phase, p.reason, p.message, p.terminal = corev1.PodFailed, reason, msg, true
		for _, c := range append(append([]*containerRuntime{}, p.initCs...), p.appCs...) {
			if r, m := c.imageProblem(); r != "" {
				c.setWaitingLocked(r, m)
			}
		}
		return p, nil
	}
	ip, err := n.ipam.allocate(string(pod.UID), pod.Status.PodIP)
	if err != nil {
		return nil, err
	}
	p.ip = ip
	return p, nil
}

// checkPod finds what localnode can never run: unmapped images, hostNetwork
// aside, unsupported volume types.
func (n *Node) checkPod(pod *corev1.Pod) (reason, message string) {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if r, m := imageProblem(n.opts.ImageMap, &cs[i]); r != "" {
				return r, m
			}
		}
	}
	if len(pod.Spec.EphemeralContainers) > 0 {
		return ReasonUnsupported, "ephemeral containers are not supported by localnode"
	}
	for _, v := range pod.Spec.Volumes {
		s := v.VolumeSource
		if s.EmptyDir == nil && s.Ephemeral == nil && s.HostPath == nil && s.PersistentVolumeClaim == nil &&
			s.Secret == nil && s.ConfigMap == nil && s.DownwardAPI == nil && s.Projected == nil {
			return ReasonUnsupported, fmt.Sprintf("volume %q: type not supported by localnode (supported: emptyDir, ephemeral, hostPath, persistentVolumeClaim, secret, configMap, downwardAPI, projected)", v.Name)
		}
	}
	return "", ""
}

func imageProblem(m ImageMap, c *corev1.Container) (reason, message string) {
	e, ok := m.Lookup(c.Image)
	if !ok {
		return ReasonErrImagePull, fmt.Sprintf("no binary mapped for image %q (container %q); add it to localnode's image map", c.Image, c.Name)
	}
	if e.Binary == "" && len(c.Command) == 0 {
		return ReasonCreateContainerError, fmt.Sprintf("image %q is mapped without a binary and container %q sets no command", c.Image, c.Name)
	}
	return "", ""
}

// current is the latest pod object; it is never modified, only replaced.
func (p *podRuntime) current() *corev1.Pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pod
}

func (p *podRuntime) podSnapshot() *corev1.Pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pod.DeepCopy()
}

func (p *podRuntime) ipString() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ip.IsValid() {
		return ""
	}
	return p.ip.String()
}

// restartPolicy cannot change in a pod's life.
func (p *podRuntime) restartPolicy() corev1.RestartPolicy {
	if p.policy == "" {
		return corev1.RestartPolicyAlways
	}
	return p.policy
}

// changed asks the notifier to report the pod's status.
func (p *podRuntime) changed() {
	select {
	case p.notifyCh <- struct{}{}:
	default:
	}
}

func (p *podRuntime) notifier(ctx context.Context) {
	for {
		select {
		case <-p.notifyCh:
			p.n.provider.notify(p.apiPod())
		case <-ctx.Done():
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// run is the pod's lifecycle: volumes, init containers in order, then the app
// containers, each supervised according to the restart policy, until the pod
// finishes or is stopped.
func (p *podRuntime) run() {
	defer close(p.done)
	notifyCtx, stopNotify := context.WithCancel(context.Background())
	go p.notifier(notifyCtx)
	defer func() {
		p.changed()
		// Give the last status a moment to be picked up before the notifier
		// goes.
		time.AfterFunc(2*time.Second, stopNotify)
	}()
	p.changed()

	p.mu.Lock()
	failed := p.terminal
	p.mu.Unlock()
	if failed {
		p.n.event(p.current(), nil, corev1.EventTypeWarning, p.reason, p.message)
		return
	}
	defer p.releaseNetwork()

	ctx := p.ctx
	if ads := p.current().Spec.ActiveDeadlineSeconds; ads != nil {
		deadline := p.startTime.Add(time.Duration(*ads) * time.Second)
		t := time.AfterFunc(time.Until(deadline), func() {
			p.fail(ReasonDeadlineExceeded, "Pod was active on the node longer than the specified deadline")
		})
		defer t.Stop()
	}

	delay := time.Second
	for {
		err := p.setupVolumes(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		p.n.event(p.current(), nil, corev1.EventTypeWarning, "FailedMount", err.Error())
		p.mu.Lock()
		for _, c := range p.appCs {
			c.setWaitingLocked(ReasonContainerCreating, err.Error())
		}
		p.mu.Unlock()
		p.changed()
		if !sleepCtx(ctx, delay) {
			return
		}
		delay = min(delay*2, 30*time.Second)
	}
	p.mu.Lock()
	p.sandboxReady = true
	p.mu.Unlock()
	p.changed()

	var sidecars sync.WaitGroup
	defer sidecars.Wait()
	for _, c := range p.initCs {
		if c.sidecar {
			sidecars.Add(1)
			go func() {
				defer sidecars.Done()
				c.supervise(ctx)
			}()
			select {
			case <-c.startedCh:
			case <-ctx.Done():
				return
			}
			continue
		}
		for {
			res := c.runOnce(ctx)
			if ctx.Err() != nil {
				return
			}
			if res.configErr {
				if !sleepCtx(ctx, c.configBackoff()) {
					return
				}
				continue
			}
			if res.exitCode == 0 {
				break
			}
			if p.restartPolicy() == corev1.RestartPolicyNever {
				p.finish(corev1.PodFailed, "", "")
				return
			}
			if !c.backOff(ctx, res) {
				return
			}
		}
	}
	p.mu.Lock()
	p.initialized = true
	p.mu.Unlock()
	p.changed()

	var wg sync.WaitGroup
	for _, c := range p.appCs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.supervise(ctx)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	// Every app container ended for good: the pod is done.
	p.mu.Lock()
	phase := p.computePhaseLocked()
	p.mu.Unlock()
	if phase != corev1.PodSucceeded {
		phase = corev1.PodFailed
	}
	p.finish(phase, "", "")
}

// finish makes the pod terminal and stops what still runs (sidecars, exec
// sessions).
func (p *podRuntime) finish(phase corev1.PodPhase, reason, message string) {
	p.mu.Lock()
	if !p.terminal {
		p.terminal, p.phase, p.reason, p.message = true, phase, reason, message
	}
	p.mu.Unlock()
	p.changed()
	go p.stop(p.gracePeriod(nil), false)
}

// fail ends a running pod as Failed (active deadline).
func (p *podRuntime) fail(reason, message string) {
	p.n.event(p.current(), nil, corev1.EventTypeWarning, reason, message)
	p.finish(corev1.PodFailed, reason, message)
}

func (p *podRuntime) gracePeriod(override *int64) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if p.pod.Spec.TerminationGracePeriodSeconds != nil {
		g = *p.pod.Spec.TerminationGracePeriodSeconds
	}
	if override != nil {
		g = *override
	}
	return time.Duration(g) * time.Second
}

// stop ends every process of the pod: SIGTERM to each container's main
// process, SIGKILL to everything after grace. It returns when all have ended
// and run has returned.
func (p *podRuntime) stop(grace time.Duration, deleting bool) {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		p.stopping = true
		if deleting {
			p.deleting = true
		}
		var procs []*shim.Process
		for _, c := range append(append([]*containerRuntime{}, p.initCs...), p.appCs...) {
			if c.inst != nil {
				procs = append(procs, c.inst.proc)
			}
		}
		for e := range p.execs {
			e.Kill()
		}
		for _, t := range p.timers {
			t.Stop()
		}
		p.mu.Unlock()
		p.cancel()
		for _, pr := range procs {
			pr.Terminate()
		}
		deadline := time.NewTimer(grace)
		defer deadline.Stop()
		for _, pr := range procs {
			select {
			case <-pr.Done():
			case <-deadline.C:
				for _, pr := range procs {
					pr.Kill()
				}
			}
		}
		for _, pr := range procs {
			<-pr.Done()
		}
	})
	<-p.done
}

func (p *podRuntime) releaseNetwork() {
	p.mu.Lock()
	ip := p.ip
	p.mu.Unlock()
	if ip.IsValid() {
		p.n.ipam.release(ip)
	}
}

func (p *podRuntime) scheduleTokenRefresh(volume string, after time.Duration) {
	if after < time.Minute {
		after = time.Minute
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		return
	}
	if t, ok := p.timers[volume]; ok {
		t.Stop()
	}
	p.timers[volume] = time.AfterFunc(after, func() {
		pod := p.podSnapshot()
		for _, v := range pod.Spec.Volumes {
			if v.Name == volume {
				if err := p.setupVolume(p.ctx, pod, v); err != nil && p.ctx.Err() == nil {
					p.n.log.Warn("refreshing service account token", "pod", p.key, "volume", volume, "err", err)
					p.scheduleTokenRefresh(volume, time.Minute)
				}
			}
		}
	})
}

// update applies a changed pod from the API: labels and annotations (downward
// API files are rewritten) and images (the container is restarted).
func (p *podRuntime) update(pod *corev1.Pod) {
	p.mu.Lock()
	old := p.pod
	p.pod = pod.DeepCopy()
	var restart []*containerRuntime
	for _, c := range append(append([]*containerRuntime{}, p.initCs...), p.appCs...) {
		spec := findContainer(p.pod, c.name)
		if spec != nil && spec.Image != c.spec.Image {
			c.spec = spec.DeepCopy()
			if c.inst != nil {
				restart = append(restart, c)
			}
		}
	}
	metaChanged := !equalMaps(old.Labels, pod.Labels) || !equalMaps(old.Annotations, pod.Annotations)
	ready := p.sandboxReady && !p.stopping
	p.mu.Unlock()
	if metaChanged && ready {
		for _, v := range pod.Spec.Volumes {
			if v.DownwardAPI != nil || v.Projected != nil {
				_ = p.setupVolume(p.ctx, pod, v)
			}
		}
	}
	for _, c := range restart {
		p.n.event(pod, c, corev1.EventTypeNormal, "Killing", "Container image changed, will be restarted")
		c.killInstance()
	}
	p.changed()
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (p *podRuntime) container(name string) *containerRuntime {
	for _, c := range append(append([]*containerRuntime{}, p.initCs...), p.appCs...) {
		if c.name == name {
			return c
		}
	}
	return nil
}

// apiPod is the pod as localnode reports it: the latest object with the status
// localnode computes.
func (p *podRuntime) apiPod() *corev1.Pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	pod := p.pod.DeepCopy()
	pod.Status = p.statusLocked()
	return pod
}

// kubeletConditions are the conditions localnode owns; others (PodScheduled,
// readiness gates, DisruptionTarget…) are kept as the API has them.
var kubeletConditions = map[corev1.PodConditionType]bool{
	corev1.PodReadyToStartContainers: true,
	corev1.PodInitialized:            true,
	corev1.ContainersReady:           true,
	corev1.PodReady:                  true,
}

func (p *podRuntime) setCondLocked(t corev1.PodConditionType, ok bool, reason, message string) {
	status := corev1.ConditionFalse
	if ok {
		status = corev1.ConditionTrue
		reason, message = "", ""
	}
	cur, exists := p.conds[t]
	if exists && cur.Status == status && cur.Reason == reason && cur.Message == message {
		return
	}
	c := corev1.PodCondition{Type: t, Status: status, Reason: reason, Message: message, LastTransitionTime: metav1.Now()}
	if exists && cur.Status == status {
		c.LastTransitionTime = cur.LastTransitionTime
	}
	c.ObservedGeneration = p.pod.Generation
	p.conds[t] = c
}

func (p *podRuntime) statusLocked() corev1.PodStatus {
	pod := p.pod
	st := corev1.PodStatus{
		HostIP:    hostIP,
		HostIPs:   []corev1.HostIP{{IP: hostIP}},
		StartTime: &p.startTime,
		QOSClass:  pod.Status.QOSClass,
		Reason:    p.reason,
		Message:   p.message,
	}
	st.ObservedGeneration = pod.Generation
	if p.ip.IsValid() {
		st.PodIP = p.ip.String()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	for _, c := range p.initCs {
		st.InitContainerStatuses = append(st.InitContainerStatuses, c.statusLocked())
	}
	for _, c := range p.appCs {
		st.ContainerStatuses = append(st.ContainerStatuses, c.statusLocked())
	}
	if p.terminal {
		st.Phase = p.phase
	} else {
		st.Phase = p.computePhaseLocked()
		if st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed {
			// Not decided until the restart policy has had its say.
			st.Phase = corev1.PodRunning
		}
	}

	p.setCondLocked(corev1.PodReadyToStartContainers, p.sandboxReady && !p.terminal, "", "")
	var notInit []string
	for _, c := range p.initCs {
		if !c.initDoneLocked() {
			notInit = append(notInit, c.name)
		}
	}
	if p.initialized || len(notInit) == 0 {
		p.setCondLocked(corev1.PodInitialized, true, "", "")
	} else {
		p.setCondLocked(corev1.PodInitialized, false, "ContainersNotInitialized", fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(notInit, " ")))
	}
	var unready []string
	for _, c := range p.appCs {
		if !c.readyLocked() {
			unready = append(unready, c.name)
		}
	}
	for _, c := range p.initCs {
		if c.sidecar && !c.readyLocked() {
			unready = append(unready, c.name)
		}
	}
	containersReady := len(unready) == 0 && !p.terminal && p.initialized
	reason, msg := "", ""
	if !containersReady {
		reason = "ContainersNotReady"
		msg = fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
		if p.terminal {
			reason, msg = "PodCompleted", ""
		}
	}
	p.setCondLocked(corev1.ContainersReady, containersReady, reason, msg)
	ready, rreason, rmsg := containersReady, reason, msg
	if ready {
		var missing []string
		for _, g := range pod.Spec.ReadinessGates {
			ok := false
			for _, c := range pod.Status.Conditions {
				if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
					ok = true
				}
			}
			if !ok {
				missing = append(missing, string(g.ConditionType))
			}
		}
		if len(missing) > 0 {
			ready, rreason, rmsg = false, "ReadinessGatesNotReady", fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", strings.Join(missing, ","))
		}
	}
	p.setCondLocked(corev1.PodReady, ready, rreason, rmsg)

	for _, c := range pod.Status.Conditions {
		if !kubeletConditions[c.Type] {
			st.Conditions = append(st.Conditions, c)
		}
	}
	types := make([]string, 0, len(p.conds))
	for t := range p.conds {
		types = append(types, string(t))
	}
	sort.Strings(types)
	for _, t := range types {
		st.Conditions = append(st.Conditions, p.conds[corev1.PodConditionType(t)])
	}
	return st
}

// computePhaseLocked follows the kubelet's phase rules.
func (p *podRuntime) computePhaseLocked() corev1.PodPhase {
	policy := p.restartPolicy()
	if !p.initialized {
		for _, c := range p.initCs {
			if t := c.status.State.Terminated; !c.sidecar && t != nil && t.ExitCode != 0 && policy == corev1.RestartPolicyNever {
				return corev1.PodFailed
			}
		}
		return corev1.PodPending
	}
	var running, waiting, stopped, succeeded int
	for _, c := range p.appCs {
		s := c.status
		switch {
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if s.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case s.LastTerminationState.Terminated != nil:
			stopped++
			if s.LastTerminationState.Terminated.ExitCode == 0 {
				succeeded++
			}
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped > 0 && stopped == len(p.appCs):
		switch policy {
		case corev1.RestartPolicyAlways:
			return corev1.PodRunning
		case corev1.RestartPolicyOnFailure:
			if succeeded == stopped {
				return corev1.PodSucceeded
			}
			return corev1.PodRunning
		default:
			if succeeded == stopped {
				return corev1.PodSucceeded
			}
			return corev1.PodFailed
		}
	}
	return corev1.PodPending
}

// deleteFromAPI removes the pod object once its processes are gone, as the
// kubelet does at the end of a graceful deletion.
func (p *podRuntime) deleteFromAPI(ctx context.Context) {
	zero := int64(0)
	uid := p.uid
	cur := p.current()
	err := p.n.client.CoreV1().Pods(cur.Namespace).Delete(ctx, cur.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		p.n.log.Warn("deleting pod", "pod", p.key, "err", err)
	}
}
