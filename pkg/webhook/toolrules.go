package webhook

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

// configKey is a field of ToolConfig a type may require.
type configKey struct {
	name    string
	present func(*v1alpha1.ToolConfig) bool
}

var (
	hostname       = configKey{"hostname", func(c *v1alpha1.ToolConfig) bool { return c.Hostname != "" }}
	username       = configKey{"username", func(c *v1alpha1.ToolConfig) bool { return c.Username != "" }}
	databaseName   = configKey{"databaseName", func(c *v1alpha1.ToolConfig) bool { return c.DatabaseName != "" }}
	urlKey         = configKey{"url", func(c *v1alpha1.ToolConfig) bool { return c.URL != "" }}
	credentialsRef = configKey{"credentialsRef", func(c *v1alpha1.ToolConfig) bool { return c.CredentialsRef != nil }}
)

// privileges is an engine's permission vocabulary.
type privileges struct {
	// all are the privileges a grant may name.
	all sets.Set[string]
	// read are those that do not write; with permissions.readOnly only these are
	// allowed.
	read sets.Set[string]
	// caseInsensitive vocabularies (SQL keywords) are matched upper-cased.
	caseInsensitive bool
	// resource checks a grant's resource and returns what is wrong with it.
	resource func(string) string
}

// toolType is what the webhook knows about a Tool type.
type toolType struct {
	required []configKey
	// privileges is nil for types without engine-native grants.
	privileges *privileges
}

func sqlPrivileges(read []string, write ...string) *privileges {
	return &privileges{
		all:             sets.New(append(slices.Clone(read), write...)...),
		read:            sets.New(read...),
		caseInsensitive: true,
	}
}

var (
	postgresPrivileges = sqlPrivileges([]string{"SELECT", "USAGE", "CONNECT"},
		"INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "CREATE", "TEMPORARY", "EXECUTE", "ALL")
	sqlDatabase = []configKey{hostname, databaseName, username, credentialsRef}
)

// toolTypes lists every type of the Tool CRD. Required keys are what the bastion
// needs to connect at all; anything else has a default or is optional.
var toolTypes = map[v1alpha1.ToolType]toolType{
	v1alpha1.ToolTypeSSH:         {required: []configKey{hostname, username, credentialsRef}},
	v1alpha1.ToolTypePostgres:    {required: sqlDatabase, privileges: postgresPrivileges},
	v1alpha1.ToolTypeCockroachDB: {required: sqlDatabase, privileges: postgresPrivileges},
	v1alpha1.ToolTypeRedshift:    {required: sqlDatabase, privileges: postgresPrivileges},
	v1alpha1.ToolTypeMySQL: {required: sqlDatabase, privileges: sqlPrivileges(
		[]string{"SELECT", "SHOW VIEW", "SHOW DATABASES"},
		"INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX", "REFERENCES", "EXECUTE",
		"CREATE VIEW", "TRIGGER", "EVENT", "LOCK TABLES", "ALL")},
	v1alpha1.ToolTypeSQLServer: {required: sqlDatabase, privileges: sqlPrivileges(
		[]string{"SELECT", "VIEW DEFINITION", "CONNECT"},
		"INSERT", "UPDATE", "DELETE", "EXECUTE", "ALTER", "CONTROL", "REFERENCES", "CREATE TABLE", "CREATE VIEW")},
	v1alpha1.ToolTypeOracle: {required: sqlDatabase, privileges: sqlPrivileges(
		[]string{"SELECT", "READ"},
		"INSERT", "UPDATE", "DELETE", "EXECUTE", "ALTER", "INDEX", "REFERENCES", "DEBUG", "ALL")},
	v1alpha1.ToolTypeClickHouse: {required: []configKey{hostname, username}, privileges: sqlPrivileges(
		[]string{"SELECT", "SHOW"},
		"INSERT", "ALTER", "CREATE", "DROP", "TRUNCATE", "OPTIMIZE", "ALL")},
	v1alpha1.ToolTypeSnowflake: {required: []configKey{hostname, username, credentialsRef}, privileges: sqlPrivileges(
		[]string{"SELECT", "USAGE", "MONITOR", "REFERENCES"},
		"INSERT", "UPDATE", "DELETE", "TRUNCATE", "OWNERSHIP", "ALL")},
	v1alpha1.ToolTypeBigQuery: {required: []configKey{credentialsRef}, privileges: &privileges{
		all:  sets.New("dataViewer", "metadataViewer", "jobUser", "dataEditor", "dataOwner", "user"),
		read: sets.New("dataViewer", "metadataViewer", "jobUser"),
	}},
	v1alpha1.ToolTypeMongoDB: {required: []configKey{hostname}, privileges: &privileges{
		all:  sets.New("read", "readWrite", "dbAdmin", "dbOwner", "userAdmin"),
		read: sets.New("read"),
	}},
	v1alpha1.ToolTypeRedis: {required: []configKey{hostname}, privileges: &privileges{
		all: sets.New("@read", "@write", "@keyspace", "@string", "@hash", "@list", "@set", "@sortedset", "@stream",
			"@bitmap", "@hyperloglog", "@geo", "@pubsub", "@scripting", "@transaction", "@connection", "@fast", "@slow",
			"@admin", "@dangerous", "@all"),
		read: sets.New("@read", "@connection", "@fast"),
	}},
	v1alpha1.ToolTypeElasticsearch: {required: []configKey{hostname}, privileges: &privileges{
		all: sets.New("read", "view_index_metadata", "monitor", "read_cross_cluster", "write", "index", "create",
			"create_doc", "delete", "create_index", "delete_index", "manage", "all"),
		read: sets.New("read", "view_index_metadata", "monitor", "read_cross_cluster"),
	}},
	v1alpha1.ToolTypeKafka: {required: []configKey{hostname}, privileges: &privileges{
		all:  sets.New("Read", "Describe", "DescribeConfigs", "Write", "Create", "Delete", "Alter", "AlterConfigs", "All"),
		read: sets.New("Read", "Describe", "DescribeConfigs"),
	}},
	v1alpha1.ToolTypeRabbitMQ: {required: []configKey{hostname, username, credentialsRef}, privileges: &privileges{
		all:  sets.New("configure", "write", "read"),
		read: sets.New("read"),
	}},
	v1alpha1.ToolTypeKubernetes: {privileges: &privileges{
		all:  sets.New("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*"),
		read: sets.New("get", "list", "watch"),
		resource: func(ns string) string {
			if ns == "*" {
				return ""
			}
			if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
				return "must be a namespace name or *: " + strings.Join(errs, ", ")
			}
			return ""
		},
	}},
	v1alpha1.ToolTypeHTTP: {required: []configKey{urlKey}, privileges: &privileges{
		all:  sets.New("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"),
		read: sets.New("GET", "HEAD", "OPTIONS"),
		resource: func(path string) string {
			if !strings.HasPrefix(path, "/") {
				return "must be a path prefix starting with /"
			}
			return ""
		},
	}},
	// Custom tools bring their own image and vocabulary; nothing to check here.
	v1alpha1.ToolTypeCustom: {},
}

// ValidateToolSpec checks what the CRD schema cannot: the keys the type needs, the
// URL of http tools, and the permission vocabulary. It does not look anything up;
// ToolValidator checks the credentials Secret.
func ValidateToolSpec(spec *v1alpha1.ToolSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	tt, ok := toolTypes[spec.Type]
	if !ok {
		// The CRD's enum rejects unknown types first; a newer CRD than this webhook
		// lands here.
		return append(errs, field.NotSupported(path.Child("type"), spec.Type, sets.List(sets.KeySet(toolTypes))))
	}
	cfg := path.Child("config")
	for _, key := range tt.required {
		if !key.present(&spec.Config) {
			errs = append(errs, field.Required(cfg.Child(key.name), fmt.Sprintf("required for %s tools", spec.Type)))
		}
	}
	if spec.Type == v1alpha1.ToolTypeHTTP && spec.Config.URL != "" {
		if u, err := url.Parse(spec.Config.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, field.Invalid(cfg.Child("url"), spec.Config.URL,
				fmt.Sprintf("%q is not an absolute http:// or https:// URL", spec.Config.URL)))
		}
	}
	if spec.Permissions != nil {
		errs = append(errs, validatePermissions(spec.Type, tt.privileges, spec.Permissions, path.Child("permissions"))...)
	}
	return errs
}

func validatePermissions(typ v1alpha1.ToolType, vocab *privileges, perms *v1alpha1.ToolPermissions, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(perms.Grants) == 0 || typ == v1alpha1.ToolTypeCustom {
		return nil
	}
	if vocab == nil {
		return append(errs, field.Forbidden(path.Child("grants"), fmt.Sprintf("%s tools have no engine-native grants", typ)))
	}
	for i, g := range perms.Grants {
		gp := path.Child("grants").Index(i)
		if vocab.resource != nil {
			if msg := vocab.resource(g.Resource); msg != "" {
				errs = append(errs, field.Invalid(gp.Child("resource"), g.Resource, fmt.Sprintf("%q %s", g.Resource, msg)))
			}
		}
		for j, p := range g.Privileges {
			name := p
			if vocab.caseInsensitive {
				name = strings.ToUpper(strings.Join(strings.Fields(p), " "))
			}
			pp := gp.Child("privileges").Index(j)
			switch {
			case !vocab.all.Has(name):
				errs = append(errs, field.NotSupported(pp, p, sets.List(vocab.all)))
			case perms.ReadOnly && !vocab.read.Has(name):
				errs = append(errs, field.Invalid(pp, p, fmt.Sprintf("%q writes, but permissions.readOnly is true (read privileges of %s: %s)",
					p, typ, strings.Join(sets.List(vocab.read), ", "))))
			}
		}
	}
	return errs
}

// formatErrors renders field errors one per clause, field path first. Errors with a
// detail are written as full sentences ("spec.config.hostname: required for postgres
// tools"), so the detail alone follows the path.
func formatErrors(errs field.ErrorList) string {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		if e.Detail != "" && e.Type != field.ErrorTypeNotSupported {
			msgs = append(msgs, e.Field+": "+e.Detail)
		} else {
			msgs = append(msgs, e.Error())
		}
	}
	return strings.Join(msgs, "; ")
}
