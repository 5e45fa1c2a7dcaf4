//go:build linux

package localnode

import (
	"context"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Variables localnode adds to every container.
const (
	EnvPodIP        = "LOCALNODE_POD_IP"
	EnvPodRoot      = "LOCALNODE_POD_ROOT"
	EnvPodUID       = "LOCALNODE_POD_UID"
	EnvPodName      = "LOCALNODE_POD_NAME"
	EnvPodNamespace = "LOCALNODE_POD_NAMESPACE"
	EnvNodeName     = "LOCALNODE_NODE_NAME"
	EnvContainer    = "LOCALNODE_CONTAINER"
)

// DefaultPath is the PATH of a container whose environment sets none (Docker's
// default).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// configError is a problem with a container's configuration that may go away
// (a Secret created later): the container waits in CreateContainerConfigError.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// envList is an ordered environment where a later Set replaces the value but
// keeps the first position, as the kubelet does.
type envList struct {
	names  []string
	values map[string]string
}

func newEnvList() *envList { return &envList{values: map[string]string{}} }

func (e *envList) Set(name, value string) {
	if _, ok := e.values[name]; !ok {
		e.names = append(e.names, name)
	}
	e.values[name] = value
}

func (e *envList) Get(name string) (string, bool) {
	v, ok := e.values[name]
	return v, ok
}

func (e *envList) Environ() []string {
	out := make([]string, 0, len(e.names))
	for _, n := range e.names {
		out = append(out, n+"="+e.values[n])
	}
	return out
}

func (e *envList) mapping() func(string) string {
	return func(name string) string {
		if v, ok := e.values[name]; ok {
			return v
		}
		return "$(" + name + ")"
	}
}

// expand replaces $(VAR) references the way Kubernetes does for env values,
// command and args: $$ is a literal $, and an unknown or unterminated
// reference is left as written.
func expand(input string, mapping func(string) string) string {
	var b strings.Builder
	checkpoint := 0
	for cursor := 0; cursor < len(input); cursor++ {
		if input[cursor] == '$' && cursor+1 < len(input) {
			b.WriteString(input[checkpoint:cursor])
			read, isVar, advance := readVariableName(input[cursor+1:])
			if isVar {
				b.WriteString(mapping(read))
			} else {
				b.WriteString(read)
			}
			cursor += advance
			checkpoint = cursor + 1
		}
	}
	return b.String() + input[checkpoint:]
}

func readVariableName(input string) (string, bool, int) {
	switch input[0] {
	case '$':
		return "$", false, 1
	case '(':
		for i := 1; i < len(input); i++ {
			if input[i] == ')' {
				return input[1:i], true, i + 1
			}
		}
		return "$(", false, 1
	default:
		return "$" + string(input[0]), false, 1
	}
}

// envContext is what a container's environment is resolved against.
type envContext struct {
	pod       *corev1.Pod
	container *corev1.Container
	podIP     string
	hostIP    string
	rootfs    string
	mounts    []string // mount paths, for path rewriting
	mapping   ImageMapping
	tty       bool
	apiHost   string
	apiPort   string
	nodeName  string
	// allocatable answers resourceFieldRef for unset limits.
	allocatable corev1.ResourceList
}

// resolveEnv builds a container's environment, in this order (later wins):
// defaults (PATH, HOSTNAME, HOME), the Kubernetes API address, envFrom and env
// (with $(VAR) expansion and mount-path rewriting), localnode's own variables,
// variables inherited from localnode's environment, and the image mapping's env.
func (n *Node) resolveEnv(ctx context.Context, ec *envContext) (*envList, error) {
	env := newEnvList()
	env.Set("PATH", DefaultPath)
	hostname := ec.pod.Name
	if ec.pod.Spec.Hostname != "" {
		hostname = ec.pod.Spec.Hostname
	}
	env.Set("HOSTNAME", hostname)
	env.Set("HOME", ec.rootfs+"/root")
	if ec.apiHost != "" {
		// There is no Service proxy on a localnode: point in-cluster clients at
		// kube-apiserver itself.
		env.Set("KUBERNETES_SERVICE_HOST", ec.apiHost)
		env.Set("KUBERNETES_SERVICE_PORT", ec.apiPort)
		env.Set("KUBERNETES_SERVICE_PORT_HTTPS", ec.apiPort)
		env.Set("KUBERNETES_PORT", "tcp://"+joinHostPort(ec.apiHost, ec.apiPort))
		env.Set("KUBERNETES_PORT_443_TCP", "tcp://"+joinHostPort(ec.apiHost, ec.apiPort))
		env.Set("KUBERNETES_PORT_443_TCP_PROTO", "tcp")
		env.Set("KUBERNETES_PORT_443_TCP_ADDR", ec.apiHost)
		env.Set("KUBERNETES_PORT_443_TCP_PORT", ec.apiPort)
	}

	ns := ec.pod.Namespace
	c := ec.container
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			optional := from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
			cm, err := n.client.CoreV1().ConfigMaps(ns).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return nil, lookupError("configmap", from.ConfigMapRef.Name, err)
			}
			for _, k := range sortedKeys(cm.Data) {
				name := from.Prefix + k
				if len(validation.IsEnvVarName(name)) == 0 {
					env.Set(name, ec.rewrite(cm.Data[k]))
				}
			}
		case from.SecretRef != nil:
			optional := from.SecretRef.Optional != nil && *from.SecretRef.Optional
			s, err := n.client.CoreV1().Secrets(ns).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return nil, lookupError("secret", from.SecretRef.Name, err)
			}
			keys := make([]string, 0, len(s.Data))
			for k := range s.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				name := from.Prefix + k
				if len(validation.IsEnvVarName(name)) == 0 {
					env.Set(name, string(s.Data[k]))
				}
			}
		}
	}
	for _, ev := range c.Env {
		if ev.ValueFrom == nil {
			env.Set(ev.Name, ec.rewrite(expand(ev.Value, env.mapping())))
			continue
		}
		v, ok, err := n.envValueFrom(ctx, ec, ev)
		if err != nil {
			return nil, err
		}
		if ok {
			env.Set(ev.Name, v)
		}
	}

	env.Set(EnvPodIP, ec.podIP)
	env.Set(EnvPodRoot, ec.rootfs)
	env.Set(EnvPodUID, string(ec.pod.UID))
	env.Set(EnvPodName, ec.pod.Name)
	env.Set(EnvPodNamespace, ec.pod.Namespace)
	env.Set(EnvNodeName, ec.nodeName)
	env.Set(EnvContainer, c.Name)
	for _, name := range ec.mapping.InheritEnv {
		if v, ok := os.LookupEnv(name); ok {
			env.Set(name, v)
		}
	}
	for _, k := range sortedKeys(ec.mapping.Env) {
		env.Set(k, expand(ec.mapping.Env[k], env.mapping()))
	}
	if ec.tty {
		if _, ok := env.Get("TERM"); !ok {
			env.Set("TERM", "xterm")
		}
	}
	return env, nil
}

func (n *Node) envValueFrom(ctx context.Context, ec *envContext, ev corev1.EnvVar) (string, bool, error) {
	ns := ec.pod.Namespace
	src := ev.ValueFrom
	switch {
	case src.FieldRef != nil:
		v, err := podFieldValue(ec, src.FieldRef.FieldPath)
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		v, err := resourceFieldValue(ec.container, src.ResourceFieldRef, ec.allocatable)
		return v, err == nil, err
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm, err := n.client.CoreV1().ConfigMaps(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && optional {
				return "", false, nil
			}
			return "", false, lookupError("configmap", ref.Name, err)
		}
		if v, ok := cm.Data[ref.Key]; ok {
			return ec.rewrite(v), true, nil
		}
		if v, ok := cm.BinaryData[ref.Key]; ok {
			return string(v), true, nil
		}
		if optional {
			return "", false, nil
		}
		return "", false, configErrorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, ns, ref.Name)
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		s, err := n.client.CoreV1().Secrets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && optional {
				return "", false, nil
			}
			return "", false, lookupError("secret", ref.Name, err)
		}
		if v, ok := s.Data[ref.Key]; ok {
			return string(v), true, nil
		}
		if v, ok := s.StringData[ref.Key]; ok {
			return v, true, nil
		}
		if optional {
			return "", false, nil
		}
		return "", false, configErrorf("couldn't find key %s in Secret %s/%s", ref.Key, ns, ref.Name)
	}
	return "", false, configErrorf("environment variable %s: unsupported valueFrom", ev.Name)
}

func lookupError(kind, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return configErrorf("%s %q not found", kind, name)
	}
	return configErrorf("reading %s %q: %v", kind, name, err)
}

// podFieldValue answers the downward API's fieldRef paths.
func podFieldValue(ec *envContext, path string) (string, error) {
	pod := ec.pod
	if k, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[k], nil
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[k], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return ec.nodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return ec.hostIP, nil
	case "status.podIP", "status.podIPs":
		return ec.podIP, nil
	}
	return "", configErrorf("unsupported fieldRef %q", path)
}

// subscript reads `prefix['key']`.
func subscript(path, prefix string) (string, bool) {
	if !strings.HasPrefix(path, prefix+"['") || !strings.HasSuffix(path, "']") {
		return "", false
	}
	return path[len(prefix)+2 : len(path)-2], true
}

func formatMap(m map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(&b, "%s=%q\n", k, m[k])
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// resourceFieldValue answers resourceFieldRef; unset limits fall back to the
// node's allocatable resources, as on a kubelet.
func resourceFieldValue(c *corev1.Container, ref *corev1.ResourceFieldSelector, allocatable corev1.ResourceList) (string, error) {
	if c == nil || (ref.ContainerName != "" && ref.ContainerName != c.Name) {
		return "", configErrorf("resourceFieldRef for container %q is not supported here", ref.ContainerName)
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", configErrorf("unsupported resource %q", ref.Resource)
	}
	var q resource.Quantity
	var found bool
	switch kind {
	case "limits":
		q, found = c.Resources.Limits[corev1.ResourceName(name)]
		if !found {
			q, found = allocatable[corev1.ResourceName(name)]
		}
	case "requests":
		q, found = c.Resources.Requests[corev1.ResourceName(name)]
		if !found {
			q, found = c.Resources.Limits[corev1.ResourceName(name)]
		}
	default:
		return "", configErrorf("unsupported resource %q", ref.Resource)
	}
	if !found {
		return "0", nil
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == "cpu" {
		return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue())))), nil
	}
	return fmt.Sprint(int64(math.Ceil(float64(q.Value()) / float64(divisor.Value())))), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// rewrite maps the mount paths a value mentions into the container's root
// directory: a mountPath counts where it starts the value or follows a
// separator (space, quote, '=', ':', ',', '[', '(', ';', '|', '&', '<', '>',
// '`') and ends the value or precedes '/' or such a separator. So
// "/var/lib/agentlet", "--data=/var/lib/agentlet/x", `["/scripts/run.sh"]` and
// "cat /scripts/a; ls /scripts" are rewritten, "/var/lib/agentlet2" and
// "https://example.com/scripts" are not.
func (ec *envContext) rewrite(s string) string {
	return rewritePaths(s, ec.mounts, ec.rootfs)
}

const pathSeparators = " \t\n\"'=:,[(;|&<>`)]{}"

func rewritePaths(s string, mounts []string, rootfs string) string {
	if len(mounts) == 0 || !strings.Contains(s, "/") {
		return s
	}
	// Longest first, so /a/b wins over /a.
	ms := append([]string(nil), mounts...)
	sort.Slice(ms, func(i, j int) bool { return len(ms[i]) > len(ms[j]) })
	var b strings.Builder
	i := 0
	for i < len(s) {
		matched := ""
		if s[i] == '/' && (i == 0 || strings.IndexByte(pathSeparators, s[i-1]) >= 0) {
			for _, m := range ms {
				if m == "" || m == "/" || !strings.HasPrefix(s[i:], m) {
					continue
				}
				end := i + len(m)
				if end == len(s) || s[end] == '/' || strings.IndexByte(pathSeparators, s[end]) >= 0 {
					matched = m
					break
				}
			}
		}
		if matched != "" {
			b.WriteString(rootfs)
			b.WriteString(matched)
			i += len(matched)
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}
