// Package framework runs a real etcd and kube-apiserver (the binaries that
// hack/build-kube-binaries.sh builds from the Go module proxy) with aggregation and the
// kubelet client configured, installs the agentkube CRDs, optionally runs
// kube-controller-manager and kube-scheduler, and hands tests and `make run` what they
// need: admin and RBAC-limited clients and kubeconfigs, the built kubectl, and
// registration of aggregated API servers that listen on 127.0.0.1.
package framework

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregatorclient "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/generated/clientset/versioned"
)

// Options configure Start.
type Options struct {
	// CRDDirectory holds the CRD manifests to install; artifacts/crds when empty.
	CRDDirectory string
	// Dir keeps the cluster's certificates and kubeconfigs; a new temporary folder
	// (removed by Stop) when empty.
	Dir string
	// APIServerFlags add to or override kube-apiserver's flags.
	APIServerFlags map[string][]string
	// Out receives etcd's and kube-apiserver's output; discarded when nil.
	Out io.Writer
	// Controllers, when set, also runs kube-controller-manager and kube-scheduler
	// (controllers.go). Off by default: most suites own the objects they create and
	// want no controller collecting, deleting or scheduling them behind their back.
	Controllers *Controllers
}

// Cluster is a running control plane.
type Cluster struct {
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// Scheme knows the built-in and agentkube.io types.
	Scheme *runtime.Scheme
	// Client is a controller-runtime client built on Config and Scheme.
	Client client.Client
	// Kube is a typed client for the built-in API.
	Kube kubernetes.Interface
	// Agentkube is the generated clientset of this project.
	Agentkube versioned.Interface
	// Aggregator manages APIServices.
	Aggregator aggregatorclient.Interface
	// KubeconfigPath is an admin kubeconfig file.
	KubeconfigPath string
	// BinDir holds kube-apiserver, etcd, kubectl, kube-controller-manager and kube-scheduler.
	BinDir string
	// Dir holds the cluster's files.
	Dir string
	// PKI is the certificate material the control plane was started with.
	PKI *PKI

	env        *envtest.Environment
	components []*component
	ownsDir    bool
}

// RepoRoot is the root of this repository, found from this file's location so that it
// works from any package's test directory.
func RepoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// BinaryDir returns the folder with kube-apiserver, etcd, kubectl,
// kube-controller-manager and kube-scheduler, building them the first time (see
// hack/build-kube-binaries.sh). KUBEBUILDER_ASSETS wins when set.
func BinaryDir() (string, error) {
	binOnce.Do(func() {
		if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
			binDir = dir
			return
		}
		cmd := exec.Command(filepath.Join(RepoRoot(), "hack", "build-kube-binaries.sh"))
		var stdout bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			binErr = fmt.Errorf("building kube binaries with hack/build-kube-binaries.sh: %w", err)
			return
		}
		binDir = strings.TrimSpace(stdout.String())
	})
	return binDir, binErr
}

// Start starts etcd and kube-apiserver, installs the CRDs and, with
// Options.Controllers, starts kube-controller-manager and kube-scheduler.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bins, err := BinaryDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{BinDir: bins, Dir: opts.Dir}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "exo-cluster-"); err != nil {
			return nil, fmt.Errorf("creating cluster folder: %w", err)
		}
		c.ownsDir = true
	}
	if c.PKI, err = newPKI(c.Dir); err != nil {
		return nil, err
	}
	crdDir := opts.CRDDirectory
	if crdDir == "" {
		crdDir = filepath.Join(RepoRoot(), "artifacts", "crds")
	}

	c.Scheme = runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(c.Scheme))
	utilruntime.Must(agentkubev1alpha1.AddToScheme(c.Scheme))
	utilruntime.Must(apiregv1.AddToScheme(c.Scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(c.Scheme))

	c.env = &envtest.Environment{
		Scheme:                   c.Scheme,
		CRDDirectoryPaths:        []string{crdDir},
		ErrorIfCRDPathMissing:    true,
		BinaryAssetsDirectory:    bins,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	apiServer := c.env.ControlPlane.GetAPIServer()
	if opts.Out != nil {
		apiServer.Out, apiServer.Err = opts.Out, opts.Out
		if c.env.ControlPlane.Etcd == nil {
			c.env.ControlPlane.Etcd = &envtest.Etcd{}
		}
		c.env.ControlPlane.Etcd.Out, c.env.ControlPlane.Etcd.Err = opts.Out, opts.Out
	}
	args := apiServer.Configure()
	for flag, values := range c.PKI.apiServerFlags() {
		args.Set(flag, values...)
	}
	for flag, values := range opts.APIServerFlags {
		args.Set(flag, values...)
	}

	if c.Config, err = c.env.Start(); err != nil {
		c.cleanup()
		return nil, fmt.Errorf("starting etcd and kube-apiserver: %w", err)
	}
	if err := c.buildClients(); err != nil {
		_ = c.Stop()
		return nil, err
	}
	admin, err := c.env.AddUser(envtest.User{Name: "exo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("creating admin user: %w", err)
	}
	if c.KubeconfigPath, err = c.writeKubeconfig("admin", admin); err != nil {
		_ = c.Stop()
		return nil, err
	}
	if err := c.waitForExtensionAuthConfig(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	if err := c.waitForCRDOpenAPI(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	if opts.Controllers != nil {
		if err := c.startControllers(ctx, opts.Controllers); err != nil {
			_ = c.Stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) buildClients() error {
	var err error
	if c.Client, err = client.New(c.Config, client.Options{Scheme: c.Scheme}); err != nil {
		return fmt.Errorf("building controller-runtime client: %w", err)
	}
	if c.Kube, err = kubernetes.NewForConfig(c.Config); err != nil {
		return fmt.Errorf("building kubernetes client: %w", err)
	}
	if c.Agentkube, err = versioned.NewForConfig(c.Config); err != nil {
		return fmt.Errorf("building agentkube client: %w", err)
	}
	if c.Aggregator, err = aggregatorclient.NewForConfig(c.Config); err != nil {
		return fmt.Errorf("building aggregator client: %w", err)
	}
	return nil
}

// Stop stops the controllers (when running), kube-apiserver and etcd, and removes the
// cluster's folder if Start made it.
func (c *Cluster) Stop() error {
	c.stopComponents(15 * time.Second)
	var err error
	if c.env != nil {
		err = c.env.Stop()
	}
	c.cleanup()
	return err
}

func (c *Cluster) cleanup() {
	if c.ownsDir {
		_ = os.RemoveAll(c.Dir)
	}
}
