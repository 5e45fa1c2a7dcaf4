package shell

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/creack/pty"
	vkapi "github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/test/framework"
)

// testKubelet is the kubelet API of one Node, served on 127.0.0.1 with the
// PKI kube-apiserver trusts, that runs exec'd commands as host processes in
// a real PTY. It is what localnode does for every pod; this test carries its
// own so that it does not depend on localnode's pod lifecycle (see
// docs/shell.md, "Tests").
type testKubelet struct {
	nodeName string
	port     int
	workDir  string
	srv      *http.Server
	ln       net.Listener

	mu    sync.Mutex
	procs map[*exec.Cmd]struct{}
	execs int // exec requests served
}

func startKubelet(ctx context.Context, c *framework.Cluster, nodeName, workDir string) (*testKubelet, error) {
	serving, err := c.PKI.KubeletServingCA.IssueServing(nodeName, []string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("kubelet serving certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		return nil, err
	}
	clientCAs, err := certs.Pool(c.PKI.KubeletClientCA.CertPEM)
	if err != nil {
		return nil, err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    clientCAs,
		// Only kube-apiserver (with the kubelet client certificate) may call.
		ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		return nil, err
	}
	k := &testKubelet{nodeName: nodeName, port: ln.Addr().(*net.TCPAddr).Port, workDir: workDir, ln: ln, procs: map[*exec.Cmd]struct{}{}}
	mux := http.NewServeMux()
	vkapi.AttachPodRoutes(vkapi.PodHandlerConfig{
		RunInContainer:        k.runInContainer,
		StreamIdleTimeout:     5 * time.Minute,
		StreamCreationTimeout: 30 * time.Second,
	}, mux, false)
	k.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = k.srv.Serve(ln) }()

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}
	node, err = c.Kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		k.stop()
		return nil, fmt.Errorf("create node: %w", err)
	}
	node.Status = corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(k.port)}},
		Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}},
	}
	if _, err := c.Kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		k.stop()
		return nil, fmt.Errorf("node status: %w", err)
	}
	return k, nil
}

// runInContainer runs cmd on the host in a PTY, wired to the exec stream.
func (k *testKubelet) runInContainer(ctx context.Context, namespace, pod, container string, cmd []string, attach vkapi.AttachIO) error {
	if len(cmd) == 0 {
		return errors.New("no command")
	}
	c := exec.Command(cmd[0], cmd[1:]...)
	c.Dir = k.workDir
	c.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + k.workDir, "TERM=xterm-256color", "PS1=$ ", "ENV=", "BASH_ENV=",
		"POD_NAME=" + pod, "POD_NAMESPACE=" + namespace, "CONTAINER_NAME=" + container,
	}
	var ptmx *os.File
	var err error
	if attach.TTY() {
		ptmx, err = pty.Start(c)
	} else {
		c.Stdin, c.Stdout, c.Stderr = attach.Stdin(), attach.Stdout(), attach.Stderr()
		err = c.Start()
	}
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.procs[c] = struct{}{}
	k.execs++
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		delete(k.procs, c)
		k.mu.Unlock()
	}()

	done := make(chan struct{})
	defer close(done)
	outDone := make(chan struct{})
	if ptmx != nil {
		defer ptmx.Close()
		go func() {
			for {
				select {
				case sz := <-attach.Resize():
					_ = pty.Setsize(ptmx, &pty.Winsize{Cols: sz.Width, Rows: sz.Height})
				case <-done:
					return
				}
			}
		}()
		if in := attach.Stdin(); in != nil {
			go func() { _, _ = io.Copy(ptmx, in) }() // ends when ptmx closes or stdin ends
		}
		go func() {
			defer close(outDone)
			_, _ = io.Copy(attach.Stdout(), ptmx) // ends with EIO once the shell has exited
		}()
	} else {
		close(outDone)
	}
	// Kill the process when the exec stream goes away (browser, tunnel or
	// operator gone), as a kubelet's runtime does.
	stop := context.AfterFunc(ctx, func() { _ = c.Process.Kill() })
	defer stop()
	werr := c.Wait()
	// Let the last output drain before the exit status goes out.
	select {
	case <-outDone:
	case <-time.After(2 * time.Second):
	}
	if ptmx != nil {
		_ = ptmx.Close()
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) && ee.ExitCode() >= 0 {
		return utilexec.CodeExitError{Err: werr, Code: ee.ExitCode()}
	}
	return werr
}

// running is how many exec'd processes are alive.
func (k *testKubelet) running() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.procs)
}

func (k *testKubelet) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = k.srv.Shutdown(ctx)
	k.mu.Lock()
	for c := range k.procs {
		_ = c.Process.Kill()
	}
	k.mu.Unlock()
}
