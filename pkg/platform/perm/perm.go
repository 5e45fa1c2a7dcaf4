// Package perm holds the canonical permission catalog. Every authorisation
// decision keys on one of these `resource:verb` strings; adding a permission
// is a code change so the catalog cannot drift from enforcement.
package perm

import "slices"

const (
	AgentsRead        = "agents:read"
	AgentsInvoke      = "agents:invoke"
	AgentsWrite       = "agents:write"
	AgentsAdmin       = "agents:admin"
	DeploymentsRead   = "deployments:read"
	DeploymentsWrite  = "deployments:write"
	DeploymentsDelete = "deployments:delete"
	AuditRead         = "audit:read"
	AuditExport       = "audit:export"
	ToolsRead         = "tools:read"
	ToolsWrite        = "tools:write"
	PoliciesRead      = "policies:read"
	PoliciesWrite     = "policies:write"
	GuardrailsRead    = "guardrails:read"
	GuardrailsWrite   = "guardrails:write"
	ProvidersRead     = "providers:read"
	ProvidersWrite    = "providers:write"
	IntegrationsRead  = "integrations:read"
	IntegrationsWrite = "integrations:write"
	OAuthAppsRead     = "oauth_apps:read"
	OAuthAppsWrite    = "oauth_apps:write"
	MCPRead           = "mcp:read"
	MCPWrite          = "mcp:write"
	SkillsRead        = "skills:read"
	SkillsWrite       = "skills:write"
	UsersRead         = "users:read"
	UsersInvite       = "users:invite"
	UsersWrite        = "users:write"
	RolesRead         = "roles:read"
	RolesWrite        = "roles:write"
	IdPRead           = "idp:read"
	IdPWrite          = "idp:write"
	TenantRead        = "tenant:read"
	TenantWrite       = "tenant:write"
	ClawRead          = "claw:read"
	ClawWrite         = "claw:write"
	MemoryRead        = "memory:read"
	MemoryWrite       = "memory:write"
	LogStorageRead    = "log_storage:read"
	LogStorageWrite   = "log_storage:write"
)

// All is the catalog, in display order.
var All = []string{
	AgentsRead, AgentsInvoke, AgentsWrite, AgentsAdmin,
	DeploymentsRead, DeploymentsWrite, DeploymentsDelete,
	AuditRead, AuditExport,
	ToolsRead, ToolsWrite,
	PoliciesRead, PoliciesWrite,
	GuardrailsRead, GuardrailsWrite,
	ProvidersRead, ProvidersWrite,
	IntegrationsRead, IntegrationsWrite,
	OAuthAppsRead, OAuthAppsWrite,
	MCPRead, MCPWrite,
	SkillsRead, SkillsWrite,
	UsersRead, UsersInvite, UsersWrite,
	RolesRead, RolesWrite,
	IdPRead, IdPWrite,
	TenantRead, TenantWrite,
	ClawRead, ClawWrite,
	MemoryRead, MemoryWrite,
	LogStorageRead, LogStorageWrite,
}

// Built-in role names; every tenant starts with these three. They cannot be
// edited or deleted (a tenant customises by creating roles of its own), so a
// tenant always has a role with every permission and the roles invitations
// and identity providers assign by default.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
	// RoleNoAccess holds no permission: what an identity provider assigns
	// unless an administrator chose a role for it.
	RoleNoAccess = "no-access"
)

// HasAll reports whether set grants every permission of want.
func HasAll(set, want []string) bool {
	for _, p := range want {
		if !Has(set, p) {
			return false
		}
	}
	return true
}

// AdminPermissions is the seeded admin role: everything.
func AdminPermissions() []string { return slices.Clone(All) }

// MemberPermissions is the seeded member role: read everything that is not
// administrative, and use agents.
func MemberPermissions() []string {
	return []string{
		AgentsRead, AgentsInvoke, DeploymentsRead, ToolsRead, PoliciesRead,
		GuardrailsRead, ProvidersRead, IntegrationsRead, MCPRead, SkillsRead,
		UsersRead, RolesRead, TenantRead, ClawRead, MemoryRead,
	}
}

// Valid reports whether p is in the catalog.
func Valid(p string) bool { return slices.Contains(All, p) }

// Has reports whether the set grants p.
func Has(set []string, p string) bool { return slices.Contains(set, p) }
