// Package apiserver assembles the subresources.agentkube.io aggregated API server: the
// scheme, the Config → Complete → New idiom of k8s.io/apiserver, and the storage of
// agents, agents/invoke, agents/log and agents/attach. It stores nothing in etcd.
package apiserver

import (
	"errors"
	"net/http"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/endpoints/openapi"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericfilters "k8s.io/apiserver/pkg/server/filters"
	openapicommon "k8s.io/kube-openapi/pkg/common"
	openapiutil "k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/exo-in-go/exo/pkg/apis/subresources"
	"github.com/exo-in-go/exo/pkg/apis/subresources/install"
	"github.com/exo-in-go/exo/pkg/apis/subresources/v1alpha1"
	agentkubeclient "github.com/exo-in-go/exo/pkg/generated/clientset/versioned/typed/agentkube/v1alpha1"
	generatedopenapi "github.com/exo-in-go/exo/pkg/generated/openapi"
	agentregistry "github.com/exo-in-go/exo/pkg/registry/agent"
)

var (
	// Scheme knows the subresources.agentkube.io types, internal and v1alpha1.
	Scheme = runtime.NewScheme()
	// Codecs serialize them.
	Codecs = serializer.NewCodecFactory(Scheme)
)

func init() {
	install.Install(Scheme)
	// The generic server decodes list, get and create options as meta/v1 in the
	// empty group, and writes Status objects there.
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	unversioned := schema.GroupVersion{Group: "", Version: "v1"}
	Scheme.AddUnversionedTypes(unversioned,
		&metav1.Status{},
		&metav1.APIVersions{},
		&metav1.APIGroupList{},
		&metav1.APIGroup{},
		&metav1.APIResourceList{},
	)
}

// LongRunningSubresources are the subresources this server streams. They are the names
// kube-apiserver also treats as long-running, so neither server cuts them at the request
// timeout; anything else here must answer well within 60 s.
var LongRunningSubresources = sets.NewString("log", "attach")

// LongRunningFunc classifies watch and the streaming subresources as long-running. The
// generic server's default knows only watch, and would end a followed log after 60 s.
var LongRunningFunc = genericfilters.BasicLongRunningRequestCheck(sets.NewString("watch", "proxy"), LongRunningSubresources)

// ApplyDefaults sets what every configuration of this server needs on the generic
// configuration: the long-running classification and OpenAPI v2 and v3 from the generated
// definitions, so `kubectl explain` and clients see the types.
func ApplyDefaults(c *genericapiserver.RecommendedConfig) {
	c.LongRunningFunc = LongRunningFunc
	namer := openapi.NewDefinitionNamer(Scheme)
	c.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(generatedopenapi.GetOpenAPIDefinitions, namer)
	c.OpenAPIConfig.Info.Title = "agentkube subresources"
	c.OpenAPIConfig.GetDefinitionName = definitionName(namer)
	c.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(generatedopenapi.GetOpenAPIDefinitions, namer)
	c.OpenAPIV3Config.Info.Title = "agentkube subresources"
	c.OpenAPIV3Config.GetDefinitionName = definitionName(namer)
	// The v3 defaults resolve references eagerly; resolve them again with our names.
	c.OpenAPIV3Config.Definitions = generatedopenapi.GetOpenAPIDefinitions(func(name string) spec.Ref {
		defName, _ := c.OpenAPIV3Config.GetDefinitionName(name)
		return spec.MustCreateRef("#/components/schemas/" + openapicommon.EscapeJsonPointer(defName))
	})
}

// definitionName names OpenAPI definitions the way the scheme does. The generated
// definitions key our types by Go package path (github.com/exo-in-go/...), while the meta
// types come keyed by their REST-friendly model names (io.k8s.apimachinery...), which is
// also how the scheme names every type; without converting ours, their definitions lose
// x-kubernetes-group-version-kind, and kubectl explain and server-side field management
// cannot find them.
func definitionName(namer *openapi.DefinitionNamer) func(string) (string, spec.Extensions) {
	return func(name string) (string, spec.Extensions) {
		if strings.Contains(name, "/") {
			name = openapiutil.ToRESTFriendlyName(name)
		}
		return namer.GetDefinitionName(name)
	}
}

// ExtraConfig is what this server needs besides the generic configuration.
type ExtraConfig struct {
	// Agents reads agentkube.io Agents from a cache.
	Agents agentregistry.AgentReader
	// AgentRuns creates and watches AgentRuns, with the server's own credentials.
	AgentRuns agentkubeclient.AgentRunsGetter
	// Locator finds an Agent's agentlet.
	Locator agentregistry.Locator
	// MaxStreams caps concurrent log and attach streams.
	MaxStreams int
	// AgentletTransport reaches agentlets; http.DefaultTransport when nil.
	AgentletTransport http.RoundTripper
}

// Config is the complete configuration of the server.
type Config struct {
	GenericConfig *genericapiserver.RecommendedConfig
	ExtraConfig   ExtraConfig
}

type completedConfig struct {
	GenericConfig genericapiserver.CompletedConfig
	ExtraConfig   *ExtraConfig
}

// CompletedConfig can only be made by Complete, which fills defaults.
type CompletedConfig struct {
	*completedConfig
}

// Server is the running aggregated API server.
type Server struct {
	GenericAPIServer *genericapiserver.GenericAPIServer
	// Streams is the limiter of log and attach streams, for metrics and tests.
	Streams *agentregistry.StreamLimiter
}

// Complete fills in defaults. It mutates the receiver.
func (c *Config) Complete() CompletedConfig {
	if c.ExtraConfig.MaxStreams == 0 {
		c.ExtraConfig.MaxStreams = 200
	}
	if c.ExtraConfig.AgentletTransport == nil {
		c.ExtraConfig.AgentletTransport = http.DefaultTransport
	}
	return CompletedConfig{&completedConfig{
		GenericConfig: c.GenericConfig.Complete(),
		ExtraConfig:   &c.ExtraConfig,
	}}
}

// New builds the server and installs the API group.
func (c completedConfig) New() (*Server, error) {
	x := c.ExtraConfig
	if x.Agents == nil || x.AgentRuns == nil || x.Locator == nil {
		return nil, errors.New("the aggregated API needs an Agent reader, an AgentRun client and an agentlet locator")
	}
	authz := c.GenericConfig.Authorization.Authorizer
	if authz == nil {
		return nil, errors.New("the aggregated API needs an authorizer: attach authorizes WebSocket upgrades for create itself")
	}
	generic, err := c.GenericConfig.New("agentkube-subresources", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, err
	}
	streams := agentregistry.NewStreamLimiter(x.MaxStreams)
	agentletClient := &http.Client{Transport: x.AgentletTransport} // no Timeout: followed logs last as long as runs

	// runtime.NewParameterCodec, not metav1.ParameterCodec: the log and attach options are
	// our types, decoded from the query string through their generated url.Values
	// conversions.
	group := genericapiserver.NewDefaultAPIGroupInfo(subresources.GroupName, Scheme, runtime.NewParameterCodec(Scheme), Codecs)
	group.VersionedResourcesStorageMap[v1alpha1.SchemeGroupVersion.Version] = map[string]rest.Storage{
		"agents":        agentregistry.NewREST(x.Agents),
		"agents/invoke": agentregistry.NewInvokeREST(x.Agents, x.AgentRuns),
		"agents/log":    agentregistry.NewLogREST(x.Agents, x.AgentRuns, x.Locator, streams, agentletClient),
		"agents/attach": agentregistry.NewAttachREST(x.Agents, x.Locator, streams, authorizer.Authorizer(authz), x.AgentletTransport),
	}
	if err := generic.InstallAPIGroup(&group); err != nil {
		return nil, err
	}
	return &Server{GenericAPIServer: generic, Streams: streams}, nil
}
