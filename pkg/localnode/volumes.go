//go:build linux

package localnode

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Volumes live in <pod dir>/volumes/<name>. A container sees a volume mounted
// at mountPath as <container root>/<mountPath>, a symbolic link to the volume
// (or to its subPath); see rewritePaths for how the paths a container is given
// are mapped.

const defaultVolumeMode = 0o644

type fileToWrite struct {
	path string
	data []byte
	mode os.FileMode
}

func (p *podRuntime) volumeDir(name string) string {
	return filepath.Join(p.dir, "volumes", name)
}

// setupVolumes materialises every volume of the pod. It is safe to call again
// (for a retry, or to refresh downward API files).
func (p *podRuntime) setupVolumes(ctx context.Context) error {
	pod := p.podSnapshot()
	for _, v := range pod.Spec.Volumes {
		if err := p.setupVolume(ctx, pod, v); err != nil {
			return fmt.Errorf("volume %q: %w", v.Name, err)
		}
	}
	return nil
}

func (p *podRuntime) setupVolume(ctx context.Context, pod *corev1.Pod, v corev1.Volume) error {
	dir := p.volumeDir(v.Name)
	src := v.VolumeSource
	switch {
	case src.EmptyDir != nil, src.Ephemeral != nil:
		return os.MkdirAll(dir, 0o777)
	case src.HostPath != nil:
		hp := src.HostPath
		typ := corev1.HostPathUnset
		if hp.Type != nil {
			typ = *hp.Type
		}
		switch typ {
		case corev1.HostPathDirectoryOrCreate:
			if err := os.MkdirAll(hp.Path, 0o755); err != nil {
				return err
			}
		case corev1.HostPathFileOrCreate:
			f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return err
			}
			f.Close()
		case corev1.HostPathUnset:
		default:
			if _, err := os.Stat(hp.Path); err != nil {
				return err
			}
		}
		return replaceSymlink(hp.Path, dir)
	case src.PersistentVolumeClaim != nil:
		// A directory per claim that outlives the pod.
		claimDir := filepath.Join(p.n.stateDir, "claims", pod.Namespace, src.PersistentVolumeClaim.ClaimName)
		if err := os.MkdirAll(claimDir, 0o777); err != nil {
			return err
		}
		return replaceSymlink(claimDir, dir)
	case src.Secret != nil:
		files, err := p.secretFiles(ctx, pod.Namespace, src.Secret.SecretName, src.Secret.Items, src.Secret.DefaultMode, src.Secret.Optional)
		if err != nil {
			return err
		}
		return writeVolume(dir, files)
	case src.ConfigMap != nil:
		files, err := p.configMapFiles(ctx, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.DefaultMode, src.ConfigMap.Optional)
		if err != nil {
			return err
		}
		return writeVolume(dir, files)
	case src.DownwardAPI != nil:
		files, err := p.downwardFiles(pod, src.DownwardAPI.Items, src.DownwardAPI.DefaultMode)
		if err != nil {
			return err
		}
		return writeVolume(dir, files)
	case src.Projected != nil:
		var files []fileToWrite
		for _, s := range src.Projected.Sources {
			var fs []fileToWrite
			var err error
			switch {
			case s.Secret != nil:
				fs, err = p.secretFiles(ctx, pod.Namespace, s.Secret.Name, s.Secret.Items, src.Projected.DefaultMode, s.Secret.Optional)
			case s.ConfigMap != nil:
				fs, err = p.configMapFiles(ctx, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, src.Projected.DefaultMode, s.ConfigMap.Optional)
			case s.DownwardAPI != nil:
				fs, err = p.downwardFiles(pod, s.DownwardAPI.Items, src.Projected.DefaultMode)
			case s.ServiceAccountToken != nil:
				var f fileToWrite
				f, err = p.serviceAccountToken(ctx, pod, v.Name, s.ServiceAccountToken, src.Projected.DefaultMode)
				fs = []fileToWrite{f}
			default:
				err = fmt.Errorf("unsupported projected source")
			}
			if err != nil {
				return err
			}
			files = append(files, fs...)
		}
		return writeVolume(dir, files)
	}
	return fmt.Errorf("volume type not supported by localnode (supported: emptyDir, ephemeral, hostPath, persistentVolumeClaim, secret, configMap, downwardAPI, projected)")
}

func fileMode(item *int32, def *int32) os.FileMode {
	if item != nil {
		return os.FileMode(*item)
	}
	if def != nil {
		return os.FileMode(*def)
	}
	return defaultVolumeMode
}

func (p *podRuntime) secretFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, defMode *int32, optional *bool) ([]fileToWrite, error) {
	s, err := p.n.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) && optional != nil && *optional {
			return nil, nil
		}
		return nil, lookupError("secret", name, err)
	}
	return keyFiles("Secret", ns, name, s.Data, items, defMode, optional)
}

func (p *podRuntime) configMapFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, defMode *int32, optional *bool) ([]fileToWrite, error) {
	cm, err := p.n.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && name == "kube-root-ca.crt" && len(p.n.apiCA) > 0 {
		// No controller-manager publishes this ConfigMap in a bare test
		// cluster; the API server's CA is what it would hold.
		cm, err = &corev1.ConfigMap{Data: map[string]string{"ca.crt": string(p.n.apiCA)}}, nil
	}
	if err != nil {
		if apierrors.IsNotFound(err) && optional != nil && *optional {
			return nil, nil
		}
		return nil, lookupError("configmap", name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles("ConfigMap", ns, name, data, items, defMode, optional)
}

func keyFiles(kind, ns, name string, data map[string][]byte, items []corev1.KeyToPath, defMode *int32, optional *bool) ([]fileToWrite, error) {
	var files []fileToWrite
	if len(items) == 0 {
		for _, k := range sortedKeys(data) {
			files = append(files, fileToWrite{path: k, data: data[k], mode: fileMode(nil, defMode)})
		}
		return files, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional != nil && *optional {
				continue
			}
			return nil, configErrorf("couldn't find key %s in %s %s/%s", it.Key, kind, ns, name)
		}
		files = append(files, fileToWrite{path: it.Path, data: v, mode: fileMode(it.Mode, defMode)})
	}
	return files, nil
}

func (p *podRuntime) downwardFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, defMode *int32) ([]fileToWrite, error) {
	var files []fileToWrite
	ec := &envContext{pod: pod, podIP: p.ipString(), hostIP: hostIP, nodeName: p.n.opts.NodeName, allocatable: p.n.allocatable}
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = podFieldValue(ec, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			var c *corev1.Container
			for i := range pod.Spec.Containers {
				if pod.Spec.Containers[i].Name == it.ResourceFieldRef.ContainerName {
					c = &pod.Spec.Containers[i]
				}
			}
			if c == nil {
				return nil, configErrorf("downwardAPI %s: no container %q", it.Path, it.ResourceFieldRef.ContainerName)
			}
			v, err = resourceFieldValue(c, it.ResourceFieldRef, p.n.allocatable)
		}
		if err != nil {
			return nil, err
		}
		files = append(files, fileToWrite{path: it.Path, data: []byte(v), mode: fileMode(it.Mode, defMode)})
	}
	return files, nil
}

// serviceAccountToken requests a token bound to the pod and schedules its
// refresh at 80% of its lifetime, as the kubelet does.
func (p *podRuntime) serviceAccountToken(ctx context.Context, pod *corev1.Pod, volume string, src *corev1.ServiceAccountTokenProjection, defMode *int32) (fileToWrite, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	exp := int64(3600)
	if src.ExpirationSeconds != nil {
		exp = *src.ExpirationSeconds
	}
	var aud []string
	if src.Audience != "" {
		aud = []string{src.Audience}
	}
	tr, err := p.n.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         aud,
			ExpirationSeconds: &exp,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fileToWrite{}, configErrorf("requesting a token for service account %s/%s: %v", pod.Namespace, sa, err)
	}
	life := time.Until(tr.Status.ExpirationTimestamp.Time)
	p.scheduleTokenRefresh(volume, life*8/10)
	return fileToWrite{path: src.Path, data: []byte(tr.Status.Token), mode: fileMode(nil, defMode)}, nil
}

// writeVolume writes files into dir, each through a temporary file and a
// rename so a reader never sees half a file.
func writeVolume(dir string, files []fileToWrite) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		clean := path.Clean("/" + f.path)[1:]
		if clean == "" || strings.HasPrefix(f.path, "/") || strings.Contains(f.path, "..") {
			return fmt.Errorf("invalid file path %q", f.path)
		}
		target := filepath.Join(dir, clean)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(target), ".tmp-")
		if err != nil {
			return err
		}
		_, werr := tmp.Write(f.data)
		cerr := tmp.Close()
		if werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.Chmod(tmp.Name(), f.mode.Perm())
		}
		if werr == nil {
			werr = os.Rename(tmp.Name(), target)
		}
		if werr != nil {
			os.Remove(tmp.Name())
			return werr
		}
	}
	return nil
}

func replaceSymlink(target, link string) error {
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	if st, err := os.Lstat(link); err == nil {
		if st.IsDir() {
			if err := os.RemoveAll(link); err != nil {
				return err
			}
		} else if err := os.Remove(link); err != nil {
			return err
		}
	}
	return os.Symlink(target, link)
}

// mountVolumes makes the container's root directory: every volumeMount becomes
// a symbolic link at <rootfs>/<mountPath>. It returns the mount paths.
func (p *podRuntime) mountVolumes(c *corev1.Container, rootfs string, env *envList) ([]string, error) {
	if err := os.MkdirAll(filepath.Join(rootfs, "root"), 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(rootfs, "tmp"), 0o1777); err != nil {
		return nil, err
	}
	var paths []string
	for _, m := range c.VolumeMounts {
		mp := path.Clean("/" + m.MountPath)
		if mp == "/" {
			return nil, configErrorf("volumeMount %q: mounting over / is not supported by localnode", m.Name)
		}
		src := p.volumeDir(m.Name)
		if _, err := os.Lstat(src); err != nil {
			return nil, configErrorf("volumeMount %q: no such volume", m.Name)
		}
		sub := m.SubPath
		if m.SubPathExpr != "" && env != nil {
			sub = expand(m.SubPathExpr, env.mapping())
		}
		if sub != "" {
			if strings.Contains(sub, "..") || strings.HasPrefix(sub, "/") {
				return nil, configErrorf("volumeMount %q: invalid subPath %q", m.Name, sub)
			}
			src = filepath.Join(src, sub)
			if _, err := os.Stat(src); os.IsNotExist(err) {
				if err := os.MkdirAll(src, 0o777); err != nil {
					return nil, err
				}
			}
		}
		if err := replaceSymlink(src, filepath.Join(rootfs, mp)); err != nil {
			return nil, fmt.Errorf("volumeMount %q at %s: %w", m.Name, mp, err)
		}
		paths = append(paths, mp)
	}
	return paths, nil
}
