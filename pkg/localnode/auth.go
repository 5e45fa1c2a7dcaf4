//go:build linux

package localnode

import (
	"net/http"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/apiserver/pkg/server/options"
)

// auth is the kubelet API's authentication (client certificates from
// ClientCAPEM, bearer tokens through TokenReview; never anonymous) and
// authorization (SubjectAccessReview on nodes/proxy, nodes/log… as a kubelet
// with --authorization-mode=Webhook, or AlwaysAllow).
type auth struct {
	authenticator.Request
	authorizer.Authorizer
	attrs nodeutil.NodeRequestAttr
}

func (a *auth) GetRequestAttributes(u user.Info, r *http.Request) authorizer.Attributes {
	return a.attrs.GetRequestAttributes(u, r)
}

func (n *Node) newAuth() (nodeutil.Auth, error) {
	authnCfg := authenticatorfactory.DelegatingAuthenticatorConfig{
		TokenAccessReviewClient:  n.client.AuthenticationV1(),
		TokenAccessReviewTimeout: 10 * time.Second,
		WebhookRetryBackoff:      options.DefaultAuthWebhookRetryBackoff(),
		CacheTTL:                 2 * time.Minute,
	}
	if len(n.opts.ClientCAPEM) > 0 {
		ca, err := dynamiccertificates.NewStaticCAContent("localnode-client-ca", n.opts.ClientCAPEM)
		if err != nil {
			return nil, err
		}
		authnCfg.ClientCertificateCAContentProvider = ca
	}
	authn, _, err := authnCfg.New()
	if err != nil {
		return nil, err
	}
	var authz authorizer.Authorizer
	if n.opts.Authorization == "AlwaysAllow" {
		authz = authorizerfactory.NewAlwaysAllowAuthorizer()
	} else {
		authz, err = authorizerfactory.DelegatingAuthorizerConfig{
			SubjectAccessReviewClient: n.client.AuthorizationV1(),
			AllowCacheTTL:             5 * time.Minute,
			DenyCacheTTL:              30 * time.Second,
			WebhookRetryBackoff:       options.DefaultAuthWebhookRetryBackoff(),
		}.New()
		if err != nil {
			return nil, err
		}
	}
	return &auth{Request: authn, Authorizer: authz, attrs: nodeutil.NodeRequestAttr{NodeName: n.opts.NodeName}}, nil
}
