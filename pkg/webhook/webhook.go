// Package webhook is agentkube-manager's admission webhook. It serves four rules over
// TLS on :9443, behind the ValidatingWebhookConfiguration and the
// MutatingWebhookConfiguration agentkube-manager (artifacts/manager/webhook.yaml):
//
//   - PathPodExec gates pods/exec, pods/attach and pods/ephemeralcontainers on the pods
//     the manager runs (agent and bastion pods): only the manager's ServiceAccount and
//     the break-glass groups get a shell that way; everyone else is sent to the audited
//     agents/attach subresource. Failure policy Ignore.
//   - PathPodGuard refuses updates that would take a managed pod out of the exec gate's
//     reach (its labels and agentkube.io owner references) or change what it runs (its
//     spec), unless the manager makes them. Failure policy Fail.
//   - PathTools validates Tool creates and spec updates: per-type required
//     configuration, the credentials Secret and key, and the permission vocabulary.
//     Failure policy Fail.
//   - PathAgentRunRequester (mutating) sets AgentRun.spec.requester from the
//     authenticated caller and refuses a forged one. Failure policy Fail.
//
// docs/webhook.md explains the choices, failure policies included.
package webhook

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Paths of the admission endpoints, referenced by the webhook configurations.
const (
	PathPodExec           = "/validate-pods-exec"
	PathPodGuard          = "/validate-pods-managed"
	PathTools             = "/validate-tools"
	PathAgentRunRequester = "/mutate-agentruns-requester"
)

// Labels that mark the pods the manager runs. The Agent and Tool controllers set them;
// the exec gate protects any pod that has LabelManagedBy=ManagedByValue together with
// LabelAgent or LabelTool, or that a controller of the agentkube.io group owns.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "agentkube-manager"
	LabelAgent     = "agentkube.io/agent"
	LabelTool      = "agentkube.io/tool"
)

// Defaults of Options.
const (
	DefaultPort                  = 9443
	DefaultManagerServiceAccount = "system:serviceaccount:agentkube-system:agentkube-manager"
	DefaultBreakGlassGroup       = "agentkube:break-glass"
)

// CertificateSource provides the serving certificate; *certs.Watcher is one.
type CertificateSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// Options configure the webhook server.
type Options struct {
	// Host and Port to listen on; all interfaces and DefaultPort when empty.
	Host string
	Port int
	// Certificates provides the serving certificate (required).
	Certificates CertificateSource
	// ManagerServiceAccount is the username the manager's own requests carry; it may
	// exec into the pods it runs (the agents/attach subresource does exactly that).
	ManagerServiceAccount string
	// BreakGlassGroups may exec into agent and bastion pods, for emergencies. Bind
	// the group only through an audited, time-limited process.
	BreakGlassGroups []string
	// GarbageCollectorUsers may remove agentkube.io owner references from managed
	// pods (orphaning deletes); DefaultGarbageCollectorUsers when nil.
	GarbageCollectorUsers []string
}

func (o *Options) setDefaults() {
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.ManagerServiceAccount == "" {
		o.ManagerServiceAccount = DefaultManagerServiceAccount
	}
	if o.BreakGlassGroups == nil {
		o.BreakGlassGroups = []string{DefaultBreakGlassGroup}
	}
	if o.GarbageCollectorUsers == nil {
		o.GarbageCollectorUsers = slices.Clone(DefaultGarbageCollectorUsers)
	}
}

func splitList(s string) []string {
	out := []string{}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// AddFlags binds the Options to command-line flags (prefix --webhook-).
func (o *Options) AddFlags(fs *flag.FlagSet) {
	o.setDefaults()
	fs.StringVar(&o.Host, "webhook-host", o.Host, "Address the admission webhook listens on (all interfaces when empty).")
	fs.IntVar(&o.Port, "webhook-port", o.Port, "Port of the admission webhook; 0 serves none (agentkube-manager).")
	fs.StringVar(&o.ManagerServiceAccount, "webhook-manager-user", o.ManagerServiceAccount, "Username of the manager's ServiceAccount: allowed to exec into agent and bastion pods, to change their labels, owner references and spec, and to set any AgentRun requester. Keep it equal to the username in the matchConditions of artifacts/manager/webhook.yaml.")
	fs.Func("webhook-break-glass-groups", "Comma-separated groups allowed to exec into agent and bastion pods (default "+strings.Join(o.BreakGlassGroups, ",")+"; empty for none).", func(s string) error {
		o.BreakGlassGroups = splitList(s)
		return nil
	})
	fs.Func("webhook-garbage-collector-users", "Comma-separated users allowed to remove agentkube.io owner references from agent and bastion pods (default "+strings.Join(o.GarbageCollectorUsers, ",")+"; empty for none).", func(s string) error {
		o.GarbageCollectorUsers = splitList(s)
		return nil
	})
}

// AddToManager adds the webhook server, with every rule registered, to mgr, and a
// readyz check that passes once it accepts TLS connections. It makes its own server
// rather than using mgr.GetWebhookServer(), whose TLS material would come from files.
// Requests are served on every replica.
func AddToManager(mgr manager.Manager, opts Options) (ctrlwebhook.Server, error) {
	opts.setDefaults()
	if opts.Certificates == nil {
		return nil, errors.New("webhook: Options.Certificates is required")
	}
	server := ctrlwebhook.NewServer(ctrlwebhook.Options{
		Host: opts.Host,
		Port: opts.Port,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.GetCertificate = opts.Certificates.GetCertificate
			c.MinVersion = tls.VersionTLS12
			// HTTP/2 stays off: kube-apiserver speaks HTTP/1.1 to webhooks, and it
			// removes the rapid-reset class of attacks (CVE-2023-44487) from the surface.
			c.NextProtos = []string{"http/1.1"}
		}},
	})
	reader := mgr.GetAPIReader()
	kube, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("building Kubernetes client: %w", err)
	}
	secretKeys := NewSecretKeys(kube)
	if err := mgr.Add(secretKeys); err != nil {
		return nil, fmt.Errorf("adding Secret key index: %w", err)
	}
	server.Register(PathPodExec, &admission.Webhook{Handler: instrument("pods-exec", &ExecGate{
		Reader:                reader,
		ManagerServiceAccount: opts.ManagerServiceAccount,
		BreakGlassGroups:      opts.BreakGlassGroups,
	})})
	server.Register(PathPodGuard, &admission.Webhook{Handler: instrument("pods-managed", &PodGuard{
		ManagerServiceAccount: opts.ManagerServiceAccount,
		GarbageCollectorUsers: opts.GarbageCollectorUsers,
	})})
	server.Register(PathTools, &admission.Webhook{Handler: instrument("tools", &ToolValidator{Reader: reader, SecretKeys: secretKeys})})
	server.Register(PathAgentRunRequester, &admission.Webhook{Handler: instrument("agentruns-requester", &RequesterDefaulter{
		ManagerServiceAccount: opts.ManagerServiceAccount,
	})})
	if err := mgr.Add(server); err != nil {
		return nil, fmt.Errorf("adding webhook server: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", server.StartedChecker()); err != nil {
		return nil, fmt.Errorf("adding webhook readyz check: %w", err)
	}
	return server, nil
}
