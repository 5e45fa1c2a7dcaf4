package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/exo-in-go/exo/pkg/agentlet/endpoint"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/pkg/controllers/ctrlutil"
)

// The agentlet's serving certificate: a kubernetes.io/tls Secret next to the token
// Secret (which is immutable and so cannot take a renewed certificate), owned by the
// Agent. Its annotations say which CA signed it and when it is due, so that the
// controller decides renewal from the metadata cache without reading the key.
const (
	// AnnotationCertIssuer is the SHA-256 fingerprint of the agentlet CA that signed the
	// certificate; a different current CA (a promotion) re-issues it.
	AnnotationCertIssuer = "agentkube.io/agentlet-cert-issuer"
	// AnnotationCertRenewAfter (RFC 3339) is two thirds into the certificate's life.
	AnnotationCertRenewAfter = "agentkube.io/agentlet-cert-renew-after"
)

// errNoAgentletCA: the manager serves agentlets TLS but has no agentlet CA yet (the
// rotator makes it on start). No pod is created without its certificate.
var errNoAgentletCA = errors.New("no agentlet CA loaded yet; the Agent's pod waits for its certificate")

// ensureTLSSecret issues the Agent's agentlet certificate, or renews it when two thirds
// of its life are gone or the agentlet CA changed. It returns when to look again.
func (r *Reconciler) ensureTLSSecret(ctx context.Context, agent *agentkubev1alpha1.Agent) (time.Duration, error) {
	ca, _ := r.AgentletCA.AgentletCA()
	if ca == nil {
		return 0, errNoAgentletCA
	}
	issuer := certs.Fingerprint(ca.Cert)
	name := endpoint.TLSSecretName(agent.Name)
	now := time.Now()

	var existing metav1.PartialObjectMetadata
	existing.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: agent.Namespace, Name: name}, &existing)
	found := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, fmt.Errorf("get agentlet certificate secret: %w", err)
	}
	reason := "issued"
	if found {
		renewAfter, perr := time.Parse(time.RFC3339, existing.Annotations[AnnotationCertRenewAfter])
		switch {
		case !metav1.IsControlledBy(&existing, agent):
			reason = "replaced a Secret the Agent does not own"
		case existing.Annotations[AnnotationCertIssuer] != issuer:
			reason = "renewed: the agentlet CA changed"
		case perr != nil:
			reason = "renewed: no renewal time recorded"
		case !now.Before(renewAfter):
			reason = "renewed: due"
		default:
			return renewAfter.Sub(now), nil
		}
	}

	serverName := endpoint.ServerName(agent.Name, agent.Namespace)
	leaf, err := certs.IssueAgentletCertificate(ca, serverName, now, r.certificateLifetime())
	if err != nil {
		return 0, err
	}
	renewAfter := now.Add(leaf.Cert.NotAfter.Sub(now) * 2 / 3)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: agent.Namespace,
			Labels:    ctrlutil.ManagedLabels(Component, agent.Name),
			Annotations: map[string]string{
				AnnotationCertIssuer:     issuer,
				AnnotationCertRenewAfter: renewAfter.UTC().Format(time.RFC3339),
			},
		},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: leaf.CertPEM, corev1.TLSPrivateKeyKey: leaf.KeyPEM},
	}
	if err := controllerutil.SetControllerReference(agent, secret, r.Scheme); err != nil {
		return 0, fmt.Errorf("set owner of agentlet certificate secret: %w", err)
	}
	if found {
		// Replaces what we looked at, or fails with a conflict and looks again.
		secret.ResourceVersion = existing.ResourceVersion
		err = r.Client.Update(ctx, secret)
	} else {
		err = r.Client.Create(ctx, secret)
	}
	if err != nil {
		return 0, fmt.Errorf("write agentlet certificate secret %s: %w", name, err)
	}
	r.Recorder.Eventf(agent, nil, corev1.EventTypeNormal, agentkubev1alpha1.ReasonAgentletCertificateIssued, "IssueCertificate",
		"Agentlet certificate for %s %s (valid until %s)", serverName, reason, leaf.Cert.NotAfter.UTC().Format(time.RFC3339))
	log.FromContext(ctx).V(1).Info("Issued agentlet certificate", "serverName", serverName, "reason", reason, "notAfter", leaf.Cert.NotAfter)
	return renewAfter.Sub(now), nil
}

func (r *Reconciler) certificateLifetime() time.Duration {
	if r.AgentletCertificateLifetime > 0 {
		return r.AgentletCertificateLifetime
	}
	return certs.AgentletCertificateLifetime
}

// agentletCAChanges enqueues every Agent when the agentlet CA changes, so that
// certificates of a superseded CA are re-issued at once.
func (r *Reconciler) agentletCAChanges(changes <-chan struct{}) source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-changes:
				}
				var agents agentkubev1alpha1.AgentList
				if err := r.Client.List(ctx, &agents); err != nil {
					log.FromContext(ctx).Error(err, "List Agents after an agentlet CA change")
					continue
				}
				for _, a := range agents.Items {
					q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&a)})
				}
			}
		}()
		return nil
	})
}
