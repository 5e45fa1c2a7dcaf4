package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ToolType is the kind of system a Tool connects to.
// +kubebuilder:validation:Enum=ssh;postgres;mysql;sqlserver;mongodb;redis;clickhouse;kubernetes;http;snowflake;bigquery;elasticsearch;kafka;oracle;cockroachdb;redshift;rabbitmq;custom
type ToolType string

// Tool types.
const (
	ToolTypeSSH           ToolType = "ssh"
	ToolTypePostgres      ToolType = "postgres"
	ToolTypeMySQL         ToolType = "mysql"
	ToolTypeSQLServer     ToolType = "sqlserver"
	ToolTypeMongoDB       ToolType = "mongodb"
	ToolTypeRedis         ToolType = "redis"
	ToolTypeClickHouse    ToolType = "clickhouse"
	ToolTypeKubernetes    ToolType = "kubernetes"
	ToolTypeHTTP          ToolType = "http"
	ToolTypeSnowflake     ToolType = "snowflake"
	ToolTypeBigQuery      ToolType = "bigquery"
	ToolTypeElasticsearch ToolType = "elasticsearch"
	ToolTypeKafka         ToolType = "kafka"
	ToolTypeOracle        ToolType = "oracle"
	ToolTypeCockroachDB   ToolType = "cockroachdb"
	ToolTypeRedshift      ToolType = "redshift"
	ToolTypeRabbitMQ      ToolType = "rabbitmq"
	ToolTypeCustom        ToolType = "custom"
)

// Tool phases.
const (
	ToolPhaseIdle       = "Idle"
	ToolPhaseConnecting = "Connecting"
	ToolPhaseReady      = "Ready"
	ToolPhaseFailed     = "Failed"
)

// ToolConfig is the connection profile injected into the bastion pod.
type ToolConfig struct {
	// hostname of the target system.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Hostname string `json:"hostname,omitempty"`
	// port of the target system.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
	// username to connect as.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Username string `json:"username,omitempty"`
	// databaseName to connect to, for database types.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	DatabaseName string `json:"databaseName,omitempty"`
	// sslMode for database types, for example require or verify-full.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	SSLMode string `json:"sslMode,omitempty"`
	// url of the target, for http tools.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url,omitempty"`
	// credentialsRef is the Secret key holding the password, key or token. The
	// credential is injected into the bastion pod and never leaves the cluster.
	// +optional
	CredentialsRef *SecretKeyRef `json:"credentialsRef,omitempty"`
	// extra holds type-specific settings.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Extra map[string]string `json:"extra,omitempty"`
}

// ToolGrant is one engine-native permission: privileges on a resource.
type ToolGrant struct {
	// resource the privileges apply to: a schema or table for databases, a key
	// pattern for redis, a namespace for kubernetes, a path prefix for http.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Resource string `json:"resource"`
	// privileges granted on the resource, in the engine's own vocabulary
	// (SELECT, INSERT, get, list, GET, ...).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	Privileges []string `json:"privileges"`
}

// ToolPermissions is the permission policy provisioned for sessions through the Tool.
type ToolPermissions struct {
	// readOnly limits sessions to reads where the engine supports it.
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`
	// grants are the engine-native privileges to provision.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Grants []ToolGrant `json:"grants,omitempty"`
}

// ToolSpec is the desired state of a Tool.
// +kubebuilder:validation:XValidation:rule="self.type != 'custom' || (has(self.image) && size(self.image) > 0)",message="image is required when type is custom",fieldPath=".image"
type ToolSpec struct {
	// type of system the Tool connects to.
	Type ToolType `json:"type"`
	// description for the catalogue.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Description string `json:"description,omitempty"`
	// tags for the catalogue.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	Tags []string `json:"tags,omitempty"`
	// probe runs a type-specific connectivity check before the Tool is Ready.
	// +optional
	Probe bool `json:"probe,omitempty"`
	// config is the connection profile.
	// +optional
	Config ToolConfig `json:"config,omitempty"`
	// image of the bastion, required for custom tools.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image,omitempty"`
	// idleTimeout tears the bastion pod down after this long without sessions.
	// +optional
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="idleTimeout must be a positive duration"
	IdleTimeout *metav1.Duration `json:"idleTimeout,omitempty"`
	// permissions is the engine-native permission policy, provisioned by a Job where
	// the type needs it.
	// +optional
	Permissions *ToolPermissions `json:"permissions,omitempty"`
}

// ToolStatus is the observed state of a Tool.
type ToolStatus struct {
	CommonStatus `json:",inline"`
	// bastionPod is the running bastion, empty while idle.
	// +optional
	BastionPod string `json:"bastionPod,omitempty"`
	// activeSessions is the number of sessions using the bastion.
	// +optional
	ActiveSessions int32 `json:"activeSessions,omitempty"`
	// lastActivityTime is when a session last used the Tool.
	// +optional
	LastActivityTime *metav1.Time `json:"lastActivityTime,omitempty"`
	// lastProbeTime is when the connectivity check last ran.
	// +optional
	LastProbeTime *metav1.Time `json:"lastProbeTime,omitempty"`
}

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tl,categories=agentkube
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Tool is a managed connection (database, SSH, HTTP, Kubernetes, ...) reached through
// an on-demand bastion pod. No pod runs while the Tool is idle.
type Tool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the Tool.
	Spec ToolSpec `json:"spec"`
	// status is the observed state of the Tool.
	// +optional
	Status ToolStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// ToolList is a list of Tools.
type ToolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Tool `json:"items"`
}
