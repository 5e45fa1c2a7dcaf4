package framework

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// ManagerWebhookConfigurationName names both webhook configurations the manager ships.
const ManagerWebhookConfigurationName = "agentkube-manager"

// ShippedWebhookConfigurations reads artifacts/manager/webhook.yaml, so tests run the
// configurations that ship: the ValidatingWebhookConfiguration and the
// MutatingWebhookConfiguration.
func ShippedWebhookConfigurations() (*admissionregistrationv1.ValidatingWebhookConfiguration, *admissionregistrationv1.MutatingWebhookConfiguration, error) {
	path := filepath.Join(RepoRoot(), "artifacts", "manager", "webhook.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var (
		vwc *admissionregistrationv1.ValidatingWebhookConfiguration
		mwc *admissionregistrationv1.MutatingWebhookConfiguration
	)
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", path, err)
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, nil, fmt.Errorf("parsing %s: %w", path, err)
		}
		switch meta.Kind {
		case "ValidatingWebhookConfiguration":
			vwc = &admissionregistrationv1.ValidatingWebhookConfiguration{}
			err = yaml.UnmarshalStrict(doc, vwc)
		case "MutatingWebhookConfiguration":
			mwc = &admissionregistrationv1.MutatingWebhookConfiguration{}
			err = yaml.UnmarshalStrict(doc, mwc)
		case "":
			continue // an empty document
		default:
			err = fmt.Errorf("unexpected kind %q", meta.Kind)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("parsing %s: %w", path, err)
		}
	}
	if vwc == nil || mwc == nil {
		return nil, nil, fmt.Errorf("%s must hold a ValidatingWebhookConfiguration and a MutatingWebhookConfiguration", path)
	}
	return vwc, mwc, nil
}

// InstallManagerWebhooks creates the shipped webhook configurations (without caBundle,
// as they ship) with every service port rewritten to port, where a test runs the
// manager's webhook server behind an ExternalName Service.
func (c *Cluster) InstallManagerWebhooks(ctx context.Context, port int) error {
	vwc, mwc, err := ShippedWebhookConfigurations()
	if err != nil {
		return err
	}
	p := int32(port)
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].ClientConfig.Service.Port = &p
	}
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig.Service.Port = &p
	}
	if _, err := c.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, vwc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating ValidatingWebhookConfiguration: %w", err)
	}
	if _, err := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating MutatingWebhookConfiguration: %w", err)
	}
	return nil
}

// WaitForManagerWebhooksInjected waits until the manager's rotator has put a caBundle
// into every webhook of both configurations.
func (c *Cluster) WaitForManagerWebhooksInjected(ctx context.Context, timeout time.Duration) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		vwc, err := c.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, ManagerWebhookConfigurationName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, w := range vwc.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return false, nil
			}
		}
		mwc, err := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, ManagerWebhookConfigurationName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, w := range mwc.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the caBundle in the webhook configurations: %w", err)
	}
	return nil
}
