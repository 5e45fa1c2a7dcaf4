package webhook

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// fromWatchCache asks kube-apiserver to answer from its watch cache
// (resourceVersion "0") instead of a quorum read from etcd: admission sits on the
// request path of every exec and Tool write, and etcd round trips are its slowest
// part.
var fromWatchCache = &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: "0"}}

// getFast reads key into obj from kube-apiserver's watch cache. The cache may lag
// etcd by a moment, so a NotFound is confirmed with a quorum read before it counts:
// a Secret created just before its Tool, or a pod just created, must not read as
// missing.
func getFast(ctx context.Context, r client.Reader, key client.ObjectKey, obj client.Object) error {
	err := r.Get(ctx, key, obj, fromWatchCache)
	if apierrors.IsNotFound(err) {
		return r.Get(ctx, key, obj)
	}
	return err
}
