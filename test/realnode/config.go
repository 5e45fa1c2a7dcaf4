package realnode

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"
)

// The cluster's addresses, the same in every cluster: each has its own namespace.
const (
	// NodeIP is the node's address; pods reach the node (and ExposeHost's forwarders)
	// there.
	NodeIP = "10.87.0.1"
	// PodCIDR is the pods' range, on the CNI bridge.
	PodCIDR = "10.88.0.0/16"
	// ServiceCIDR is the Services' range.
	ServiceCIDR = "10.96.0.0/16"
	// DNSServiceIP is the ClusterIP of kube-system/kube-dns (CoreDNS).
	DNSServiceIP = "10.96.0.10"

	apiServiceIP  = "10.96.0.1" // the kubernetes Service
	apiServerPort = 6443
	nodeBridge    = "rn0"
	clusterDomain = "cluster.local"
)

// flags renders a flag map as --name=value arguments in a stable order.
func flags(m map[string][]string) []string {
	var args []string
	for name, values := range m {
		for _, v := range values {
			args = append(args, "--"+name+"="+v)
		}
	}
	sort.Strings(args)
	return args
}

func (c *Cluster) etcdArgs() []string {
	return flags(map[string][]string{
		"name":                        {"realnode"},
		"data-dir":                    {c.path("etcd")},
		"listen-client-urls":          {"http://127.0.0.1:2379"},
		"advertise-client-urls":       {"http://127.0.0.1:2379"},
		"listen-peer-urls":            {"http://127.0.0.1:2380"},
		"initial-advertise-peer-urls": {"http://127.0.0.1:2380"},
		"initial-cluster":             {"realnode=http://127.0.0.1:2380"},
		// A test cluster's data need not survive a power cut.
		"unsafe-no-fsync": {"true"},
		"log-level":       {"warn"},
	})
}

func (c *Cluster) apiServerArgs() []string {
	m := map[string][]string{
		"etcd-servers":                       {"http://127.0.0.1:2379"},
		"bind-address":                       {"0.0.0.0"},
		"secure-port":                        {fmt.Sprint(apiServerPort)},
		"advertise-address":                  {NodeIP},
		"service-cluster-ip-range":           {ServiceCIDR},
		"allow-privileged":                   {"true"},
		"authorization-mode":                 {"Node,RBAC"},
		"enable-admission-plugins":           {"NodeRestriction"},
		"client-ca-file":                     {c.pkiFile("ca.crt")},
		"tls-cert-file":                      {c.pkiFile("apiserver.crt")},
		"tls-private-key-file":               {c.pkiFile("apiserver.key")},
		"kubelet-client-certificate":         {c.pkiFile("apiserver-kubelet-client.crt")},
		"kubelet-client-key":                 {c.pkiFile("apiserver-kubelet-client.key")},
		"kubelet-certificate-authority":      {c.pkiFile("ca.crt")},
		"kubelet-preferred-address-types":    {"InternalIP"},
		"service-account-issuer":             {"https://kubernetes.default.svc." + clusterDomain},
		"service-account-key-file":           {c.pkiFile("sa.key")},
		"service-account-signing-key-file":   {c.pkiFile("sa.key")},
		"requestheader-client-ca-file":       {c.pkiFile("front-proxy-ca.crt")},
		"requestheader-allowed-names":        {"front-proxy-client"},
		"requestheader-username-headers":     {"X-Remote-User"},
		"requestheader-uid-headers":          {"X-Remote-Uid"},
		"requestheader-group-headers":        {"X-Remote-Group"},
		"requestheader-extra-headers-prefix": {"X-Remote-Extra-"},
		"proxy-client-cert-file":             {c.pkiFile("front-proxy-client.crt")},
		"proxy-client-key-file":              {c.pkiFile("front-proxy-client.key")},
		"enable-aggregator-routing":          {fmt.Sprint(c.opts.AggregatorRouting)},
	}
	for name, values := range c.opts.APIServerFlags {
		m[name] = values
	}
	return flags(m)
}

// controllerManagerArgs and schedulerArgs give no --authentication-kubeconfig: both
// start together with kube-apiserver, and with it they exit when kube-apiserver has not
// yet bootstrapped the RBAC rule that lets them read its client CA. Their ports are on
// the namespace's loopback, where nothing needs to authenticate to them.
func (c *Cluster) controllerManagerArgs() []string {
	kubeconfig := c.pkiFile("kube-controller-manager.kubeconfig")
	return flags(map[string][]string{
		"kubeconfig":   {kubeconfig},
		"bind-address": {"127.0.0.1"},
		"leader-elect": {"false"},
		// Each controller acts as its own service account, which the bootstrap RBAC
		// policy grants what it needs; kube-controller-manager's own user may do little.
		"use-service-account-credentials":  {"true"},
		"service-account-private-key-file": {c.pkiFile("sa.key")},
		"root-ca-file":                     {c.pkiFile("ca.crt")},
		"cluster-signing-cert-file":        {c.pkiFile("ca.crt")},
		"cluster-signing-key-file":         {c.pkiFile("ca.key")},
		"service-cluster-ip-range":         {ServiceCIDR},
		"cluster-cidr":                     {PodCIDR},
		// The CNI plugin's host-local IPAM hands out pod addresses, not the node's podCIDR.
		"allocate-node-cidrs": {"false"},
	})
}

func (c *Cluster) schedulerArgs() []string {
	kubeconfig := c.pkiFile("kube-scheduler.kubeconfig")
	return flags(map[string][]string{
		"kubeconfig":   {kubeconfig},
		"bind-address": {"127.0.0.1"},
		"leader-elect": {"false"},
	})
}

func (c *Cluster) kubeletArgs() []string {
	return flags(map[string][]string{
		"config":            {c.path("etc", "kubelet.yaml")},
		"kubeconfig":        {c.pkiFile("kubelet.kubeconfig")},
		"root-dir":          {c.path("kubelet")},
		"cert-dir":          {c.path("kubelet", "pki")},
		"hostname-override": {c.Name},
		"node-ip":           {NodeIP},
	})
}

// containerdSocket is containerd's API socket; ctr and kubelet talk to it.
func (c *Cluster) containerdSocket() string { return c.path("containerd", "containerd.sock") }

// writeConfigs writes the configuration files of containerd, the CNI plugins, kubelet and
// kube-proxy into DIR/etc.
func (c *Cluster) writeConfigs() error {
	kubelet, err := c.kubeletConfig()
	if err != nil {
		return err
	}
	cni, err := c.cniConfig()
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"containerd.toml":          []byte(c.containerdConfig()),
		"kubelet.yaml":             kubelet,
		"kube-proxy.yaml":          []byte(c.kubeProxyConfig()),
		"cni/10-realnode.conflist": cni,
		// Pods with dnsPolicy Default, and CoreDNS, get this: the host's resolver is
		// out of reach, and a name must fail at once rather than time out.
		"resolv.conf": []byte("nameserver 127.0.0.1\n"),
	}
	for name, data := range files {
		path := c.path("etc", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

// containerdConfig keeps everything containerd can be told about in DIR: root, state,
// socket, runc's state, the CNI configuration and the opt plugin's folder (which would
// otherwise be /opt/containerd). restrict_oom_score_adj is needed here: root on these
// machines lacks CAP_SYS_RESOURCE, so runc cannot give the pause container its negative
// oom_score_adj ("can't get final child's PID from pipe: EOF"); restricted, containers
// get at least containerd's own score (0).
func (c *Cluster) containerdConfig() string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return strings.Join([]string{
		`version = 2`,
		`root = ` + q(c.path("containerd", "root")),
		`state = ` + q(c.path("containerd", "state")),
		`disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]`,
		`[grpc]`,
		`  address = ` + q(c.containerdSocket()),
		`[plugins."io.containerd.internal.v1.opt"]`,
		`  path = ` + q(c.path("containerd", "opt")),
		`[plugins."io.containerd.grpc.v1.cri"]`,
		`  sandbox_image = ` + q(pauseImageRef),
		`  restrict_oom_score_adj = true`,
		`  netns_mounts_under_state_dir = true`,
		`  disable_apparmor = true`,
		`  [plugins."io.containerd.grpc.v1.cri".containerd]`,
		`    snapshotter = "overlayfs"`,
		`    default_runtime_name = "runc"`,
		`    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]`,
		`      runtime_type = "io.containerd.runc.v2"`,
		`      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]`,
		`        SystemdCgroup = false`,
		`        Root = ` + q(c.path("containerd", "runc")),
		`  [plugins."io.containerd.grpc.v1.cri".cni]`,
		`    bin_dir = "/usr/lib/cni"`,
		`    conf_dir = ` + q(c.path("etc", "cni")),
		`    max_conf_num = 1`,
		``,
	}, "\n")
}

// cniConfig: the bridge plugin with host-local IPAM (state in DIR), masquerading out of
// the pod range and hairpin on, so a pod reaches itself through its own Service.
func (c *Cluster) cniConfig() ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       c.Name,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": PodCIDR}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": c.path("cni"),
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("rendering the CNI configuration: %w", err)
	}
	return b, nil
}

// kubeletConfig: cgroup v1 allowed (these machines have no v2 controllers), the cgroupfs
// driver under the cluster's own cgroup root, authentication by client certificate and
// token review, its serving certificate from the cluster CA, the cluster's DNS, logs in
// DIR/log/pods, and no image garbage collection: imported images cannot be pulled again.
func (c *Cluster) kubeletConfig() ([]byte, error) {
	cfg := kubeletv1beta1.KubeletConfiguration{
		TypeMeta:                 metav1.TypeMeta{APIVersion: "kubelet.config.k8s.io/v1beta1", Kind: "KubeletConfiguration"},
		FailCgroupV1:             new(false),
		CgroupDriver:             "cgroupfs",
		CgroupRoot:               c.cgroups().cgroupRoot(),
		ContainerRuntimeEndpoint: "unix://" + c.containerdSocket(),
		Address:                  NodeIP,
		ReadOnlyPort:             0,
		HealthzBindAddress:       "127.0.0.1",
		TLSCertFile:              c.pkiFile("kubelet-serving.crt"),
		TLSPrivateKeyFile:        c.pkiFile("kubelet-serving.key"),
		Authentication: kubeletv1beta1.KubeletAuthentication{
			X509:      kubeletv1beta1.KubeletX509Authentication{ClientCAFile: c.pkiFile("ca.crt")},
			Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: new(true)},
			Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: new(false)},
		},
		Authorization:               kubeletv1beta1.KubeletAuthorization{Mode: kubeletv1beta1.KubeletAuthorizationModeWebhook},
		ClusterDNS:                  []string{DNSServiceIP},
		ClusterDomain:               clusterDomain,
		ResolverConfig:              new(c.path("etc", "resolv.conf")),
		PodLogsDir:                  c.path("log", "pods"),
		ImageGCHighThresholdPercent: new(int32(100)),
		ImageGCLowThresholdPercent:  new(int32(99)),
		// The host's disk and memory are shared with everything else on the machine:
		// evict only when they are all but gone.
		EvictionHard: map[string]string{
			"memory.available": "1%", "nodefs.available": "1%", "nodefs.inodesFree": "1%", "imagefs.available": "1%",
		},
		// kubelet cannot lower its own oom_score_adj (no CAP_SYS_RESOURCE).
		OOMScoreAdj: new(int32(0)),
		FailSwapOn:  new(false),
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("rendering the kubelet configuration: %w", err)
	}
	return b, nil
}

// kubeProxyConfig: iptables mode inside the namespace. conntrack maxPerCore 0 leaves
// nf_conntrack_max, a host-wide setting, alone; oomScoreAdj 0 because it cannot lower its
// own; rules resync at once on every change, which a one-node cluster can afford, so a
// new Service answers sooner.
func (c *Cluster) kubeProxyConfig() string {
	return strings.Join([]string{
		`apiVersion: kubeproxy.config.k8s.io/v1alpha1`,
		`kind: KubeProxyConfiguration`,
		`clientConnection:`,
		`  kubeconfig: ` + c.pkiFile("kube-proxy.kubeconfig"),
		`hostnameOverride: ` + c.Name,
		`mode: iptables`,
		`clusterCIDR: ` + PodCIDR,
		`bindAddress: 0.0.0.0`,
		`healthzBindAddress: 127.0.0.1:10256`,
		`metricsBindAddress: 127.0.0.1:10249`,
		`oomScoreAdj: 0`,
		`conntrack:`,
		`  maxPerCore: 0`,
		`iptables:`,
		`  minSyncPeriod: 0s`,
		``,
	}, "\n")
}
