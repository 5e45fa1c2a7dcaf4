package cluster_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/exo-in-go/exo/pkg/agentlet/endpoint"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/pkg/controllers/agent"
	"github.com/exo-in-go/exo/pkg/localnode"
	"github.com/exo-in-go/exo/pkg/localnode/localnodetest"
	"github.com/exo-in-go/exo/pkg/manager/app"
	agentregistry "github.com/exo-in-go/exo/pkg/registry/agent"
)

// TestItem22_AgentletServesTLS: the agentlet's bearer token and the runs' content used
// to cross the pod network in plain HTTP, so whoever could read that traffic had the
// token, and whoever could take over the pod IP could pose as the agentlet. A real
// Agent (the manager's controllers, the agentlet binary on a localnode, the manager's
// certificate machinery as it ships) now serves TLS only, with a certificate for its own
// name from the agentlet CA; the manager's clients refuse, before sending the token, an
// impostor at the pod's address that presents a certificate for another Agent, one from
// another CA, or plain HTTP; and a run works end to end.
func TestItem22_AgentletServesTLS(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 4*time.Minute)
	ns := cluster.CreateNamespace(t)
	const nodeName = "item22-node"
	// Its own node, binding nothing by itself: the other tests' pods stay unscheduled.
	localnodetest.Start(t, cluster, localnodetest.AgentImages(localnodetest.BuildAgentlet(t)), func(o *localnode.Options) {
		o.NodeName = nodeName
		o.BindUnscheduledPods = false
	})
	startAgentManager(t)

	const name = "reviewer"
	_, err := cluster.Agentkube.AgentkubeV1alpha1().Agents(ns).Create(ctx, &agentkubev1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: agentkubev1alpha1.AgentSpec{
			Runtime: agentkubev1alpha1.RuntimeCustom,
			Image:   "registry.local/agentkube/custom-shell:dev",
			Command: []string{"/bin/sh", "-c", `echo "reviewed: ${AGENT_INPUT}"`},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating the Agent: %v", err)
	}
	pod := runAgentPod(t, ctx, ns, name, nodeName)
	serverName := endpoint.ServerName(name, ns)
	bundle := func() []byte { _, b := certificates.AgentletCA(); return b }
	roots, err := certs.Pool(bundle())
	if err != nil {
		t.Fatalf("agentlet CA bundle: %v", err)
	}

	t.Run("the pod gets a certificate for the Agent's name only", func(t *testing.T) {
		if !endpoint.ServesTLS(pod) {
			t.Fatalf("the Agent's pod does not give its agentlet a certificate: %+v", pod.Spec.Containers[0].Env)
		}
		s, err := cluster.Kube.CoreV1().Secrets(ns).Get(ctx, endpoint.TLSSecretName(name), metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the agentlet certificate Secret: %v", err)
		}
		if s.Type != corev1.SecretTypeTLS || len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "Agent" || s.OwnerReferences[0].Name != name {
			t.Fatalf("Secret %s: type %s, owners %+v; want kubernetes.io/tls owned by the Agent", s.Name, s.Type, s.OwnerReferences)
		}
		kp, err := certs.ParseKeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
		if err != nil {
			t.Fatal(err)
		}
		if got := kp.Cert.DNSNames; len(got) != 1 || got[0] != serverName || len(kp.Cert.IPAddresses) != 0 {
			t.Fatalf("certificate names %v %v, want only %s", got, kp.Cert.IPAddresses, serverName)
		}
		if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: serverName}); err != nil {
			t.Fatalf("the certificate does not verify against the agentlet CA bundle: %v", err)
		}
	})

	addr := pod.Status.PodIP + ":" + strconv.Itoa(int(endpoint.Port(pod)))
	token := agentToken(t, ctx, ns, name)

	t.Run("the agentlet refuses plain HTTP and TLS below 1.3", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/v1/runs"} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
			if err != nil {
				continue // refused outright: fine
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(body), "items") || string(body) == "ok" {
				t.Errorf("plain HTTP GET %s answered %d %q; want no API over plain HTTP", path, resp.StatusCode, body)
			}
		}
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: serverName, RootCAs: roots, MaxVersion: tls.VersionTLS12})
		if err == nil {
			conn.Close()
			t.Errorf("the agentlet accepted TLS 1.2")
		}
	})

	t.Run("the manager's Locator verifies the Agent's certificate", func(t *testing.T) {
		ag, err := cluster.Agentkube.AgentkubeV1alpha1().Agents(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		loc := &agentregistry.PodLocator{Client: cluster.Kube, AgentletBundle: bundle}
		ep, err := loc.Locate(ctx, ag)
		if err != nil {
			t.Fatalf("Locate: %v", err)
		}
		if !strings.HasPrefix(ep.URL, "https://") || ep.ServerName != serverName {
			t.Fatalf("endpoint %s with server name %q; want https and %s", ep.URL, ep.ServerName, serverName)
		}
		c, err := ep.Client(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ListRuns(ctx); err != nil {
			t.Fatalf("listing runs over verified TLS: %v", err)
		}
		// agents/attach dials the agentlet for its WebSocket the way
		// proxy.UpgradeAwareHandler does, with the endpoint's transport: verified too.
		attachURL, _ := url.Parse(ep.URL + "/v1/attach")
		conn, err := proxy.DialURL(ctx, attachURL, ep.RoundTripper(nil))
		if err != nil {
			t.Fatalf("dialing the attach WebSocket's connection: %v", err)
		}
		if st := conn.(*tls.Conn).ConnectionState(); st.Version != tls.VersionTLS13 || st.PeerCertificates[0].DNSNames[0] != serverName {
			t.Errorf("attach connection: TLS version %x, peer %v", st.Version, st.PeerCertificates[0].DNSNames)
		}
		conn.Close()
		// The real agentlet, reached for another Agent's name: refused.
		other, err := resolver(bundle, addr).Resolve(ctx, "other", pod)
		if err != nil {
			t.Fatal(err)
		}
		if err := call(ctx, other); err == nil || !isCertificateError(err) {
			t.Errorf("the agentlet of %s accepted as Agent other: %v", name, err)
		}
		if conn, err := proxy.DialURL(ctx, attachURL, other.RoundTripper(nil)); err == nil {
			conn.Close()
			t.Errorf("the attach dial accepted the agentlet of %s as Agent other", name)
		}
		// No bundle: refused, never downgraded to HTTP or unverified TLS.
		if _, err := resolver(nil, addr).Resolve(ctx, name, pod); err == nil {
			t.Errorf("resolved a TLS agentlet without a trust bundle")
		}
	})

	t.Run("an impostor at the pod's address never gets the token", func(t *testing.T) {
		signer, _ := certificates.AgentletCA()
		foreignCA, err := certs.NewCA("foreign-ca", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		issue := func(ca *certs.KeyPair, name string) *certs.KeyPair {
			kp, err := certs.IssueAgentletCertificate(ca, name, time.Now(), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			return kp
		}
		for _, tc := range []struct {
			what   string
			cert   *certs.KeyPair // nil: plain HTTP
			wantOK bool
		}{
			{"a certificate for another Agent from the agentlet CA", issue(signer, endpoint.ServerName("other", ns)), false},
			{"a certificate for another namespace's Agent of the same name", issue(signer, endpoint.ServerName(name, ns+"x")), false},
			{"a certificate for the Agent's name from a foreign CA", issue(foreignCA, serverName), false},
			{"plain HTTP", nil, false},
			// The control: the same impostor with the right certificate is reached, so the
			// refusals above are the verification's doing.
			{"the Agent's own certificate (control)", issue(signer, serverName), true},
		} {
			t.Run(tc.what, func(t *testing.T) {
				var tokens atomic.Int32
				srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Header.Get("Authorization") == "Bearer "+token {
						tokens.Add(1)
					}
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, `{"items":[]}`)
				}))
				if tc.cert != nil {
					pair, err := tls.X509KeyPair(tc.cert.CertPEM, tc.cert.KeyPEM)
					if err != nil {
						t.Fatal(err)
					}
					srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
					srv.StartTLS()
				} else {
					srv.Start()
				}
				defer srv.Close()
				ep, err := resolver(bundle, srv.Listener.Addr().String()).Resolve(ctx, name, pod)
				if err != nil {
					t.Fatal(err)
				}
				err = call(ctx, ep)
				switch {
				case tc.wantOK && (err != nil || tokens.Load() != 1):
					t.Fatalf("control call failed: %v (token seen %d times)", err, tokens.Load())
				case !tc.wantOK && err == nil:
					t.Fatalf("the client accepted the impostor")
				case !tc.wantOK && tokens.Load() != 0:
					t.Fatalf("the impostor received the token (%d times)", tokens.Load())
				}
			})
		}
	})

	t.Run("a run works end to end over TLS", func(t *testing.T) {
		run, err := cluster.Agentkube.AgentkubeV1alpha1().AgentRuns(ns).Create(ctx, &agentkubev1alpha1.AgentRun{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "review-"},
			Spec:       agentkubev1alpha1.AgentRunSpec{AgentRef: agentkubev1alpha1.LocalObjectReference{Name: name}, Input: "the payroll change"},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var last *agentkubev1alpha1.AgentRun
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			last, err = cluster.Agentkube.AgentkubeV1alpha1().AgentRuns(ns).Get(ctx, run.Name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			switch last.Status.Phase {
			case agentkubev1alpha1.AgentRunPhaseSucceeded, agentkubev1alpha1.AgentRunPhaseFailed, agentkubev1alpha1.AgentRunPhaseTimedOut:
				return true, nil
			}
			return false, nil
		})
		if err != nil || last.Status.Phase != agentkubev1alpha1.AgentRunPhaseSucceeded {
			t.Fatalf("run %s: %v; status %+v", run.Name, err, last.Status)
		}
		if !strings.Contains(last.Status.OutputTail, "reviewed: the payroll change") {
			t.Fatalf("output tail %q", last.Status.OutputTail)
		}
	})
}

// startAgentManager runs agentkube-manager's controllers as app.New assembles them,
// beside the webhook's process of TestMain and on the same certificate Secret: the
// agentlet CA from the certificate Watcher.
func startAgentManager(t *testing.T) {
	t.Helper()
	st := webhookSettings()
	st.Manager.Controllers = []string{"*"}
	st.Manager.RunPollInterval = time.Second
	m, err := app.New(st, app.Options{Config: cluster.Config})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

// runAgentPod binds the Agent's pod to the test's node (there is no scheduler) and
// waits until the Agent is Ready, its agentlet answering the readiness probe.
func runAgentPod(t *testing.T, ctx context.Context, ns, name, node string) *corev1.Pod {
	t.Helper()
	pods := cluster.Kube.CoreV1().Pods(ns)
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if p.Spec.NodeName == "" {
			_ = pods.Bind(ctx, &corev1.Binding{
				ObjectMeta: metav1.ObjectMeta{Name: p.Name, UID: p.UID},
				Target:     corev1.ObjectReference{Kind: "Node", Name: node},
			}, metav1.CreateOptions{})
			return false, nil
		}
		ag, err := cluster.Agentkube.AgentkubeV1alpha1().Agents(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || !agent.IsReady(ag) || p.Status.PodIP == "" {
			return false, nil
		}
		pod = p
		return true, nil
	})
	if err != nil {
		ag, _ := cluster.Agentkube.AgentkubeV1alpha1().Agents(ns).Get(ctx, name, metav1.GetOptions{})
		t.Fatalf("the Agent's pod did not become ready: %v; Agent status %+v", err, ag.Status)
	}
	return pod
}

func agentToken(t *testing.T, ctx context.Context, ns, name string) string {
	t.Helper()
	s, err := cluster.Kube.CoreV1().Secrets(ns).Get(ctx, endpoint.TokenSecretName(name), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return string(s.Data[endpoint.TokenSecretKey])
}

// resolver is the manager's resolver with the agentlet found at addr (an impostor's,
// as after a hijacked pod IP), the trust bundle given and the reviewer's token.
func resolver(bundle func() []byte, addr string) *endpoint.Resolver {
	return &endpoint.Resolver{
		Addresser: fixedAddress(addr),
		Bundle:    bundle,
		Tokens: &endpoint.Tokens{
			// Whatever Agent is asked for, the reviewer's token is what is at stake.
			Get: func(ctx context.Context, namespace, _ string) (*corev1.Secret, error) {
				return cluster.Kube.CoreV1().Secrets(namespace).Get(ctx, endpoint.TokenSecretName("reviewer"), metav1.GetOptions{})
			},
		},
	}
}

type fixedAddress string

func (a fixedAddress) AgentletAddress(context.Context, *corev1.Pod) (string, error) {
	return string(a), nil
}

func call(ctx context.Context, ep endpoint.Endpoint) error {
	c, err := ep.Client(nil)
	if err != nil {
		return err
	}
	_, err = c.ListRuns(ctx)
	return err
}

func isCertificateError(err error) bool {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &verify)
}
