// Package store is the persistence layer of exo-app. Handlers talk to the
// Store interface only; the SQL implementation runs on SQLite (default, no
// setup) and PostgreSQL (HA) from one set of migrations.
//
// Tenant isolation is enforced here, not only in handlers: every method that
// touches tenant-owned rows takes the tenant id and puts it in the WHERE
// clause, so a handler bug cannot read or change another tenant's rows by id.
// The few global lookups (by e-mail, by token hash) are named as such.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by Store implementations; compare with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict reports a uniqueness violation (duplicate name, e-mail).
	ErrConflict = errors.New("already exists")
	// ErrInUse reports a row that other rows still reference (a role with members).
	ErrInUse = errors.New("in use")
	// ErrInvalidToken reports an unknown, expired or already used single-use token.
	ErrInvalidToken = errors.New("invalid or expired token")
)

// Deployment statuses. The operator tunnel drives them; a new deployment is pending
// until its operator connects for the first time.
const (
	StatusPending   = "pending"
	StatusConnected = "connected"
	StatusDegraded  = "degraded"
	StatusOffline   = "offline"
)

// ValidStatus reports whether s is one of the deployment statuses.
func ValidStatus(s string) bool {
	switch s {
	case StatusPending, StatusConnected, StatusDegraded, StatusOffline:
		return true
	}
	return false
}

type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

type User struct {
	ID           string    `json:"id"`
	Email        string    `json:"email"`
	Name         string    `json:"name"`
	PasswordHash string    `json:"-"`
	CreatedAt    time.Time `json:"created_at"`
}

type Role struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Permissions []string  `json:"permissions"`
	Builtin     bool      `json:"builtin"`
	CreatedAt   time.Time `json:"created_at"`
}

// Membership is a user's place in one tenant with the permissions of its role.
type Membership struct {
	TenantID    string   `json:"tenant_id"`
	TenantName  string   `json:"tenant_name"`
	UserID      string   `json:"user_id"`
	RoleID      string   `json:"role_id"`
	RoleName    string   `json:"role_name"`
	Permissions []string `json:"permissions"`
}

// Member is a user as seen by the tenant administrators.
type Member struct {
	User
	RoleID   string    `json:"role_id"`
	RoleName string    `json:"role_name"`
	JoinedAt time.Time `json:"joined_at"`
}

type Deployment struct {
	ID          string `json:"id"`
	TenantID    string `json:"tenant_id"`
	Name        string `json:"name"`
	TokenPrefix string `json:"token_prefix"`
	// TokenHash is only filled by GetDeploymentByTokenHash (for a constant-time re-check).
	TokenHash       string     `json:"-"`
	TokenIssuedAt   time.Time  `json:"token_issued_at"`
	Status          string     `json:"status"`
	LastHeartbeatAt *time.Time `json:"last_heartbeat_at"`
	CreatedBy       string     `json:"created_by"`
	CreatedAt       time.Time  `json:"created_at"`
}

type Invitation struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenant_id"`
	Email      string     `json:"email"`
	RoleID     string     `json:"role_id"`
	InvitedBy  string     `json:"invited_by"`
	ExpiresAt  time.Time  `json:"expires_at"`
	AcceptedAt *time.Time `json:"accepted_at"`
	CreatedAt  time.Time  `json:"created_at"`
}

type PasswordReset struct {
	ID        string
	UserID    string
	ExpiresAt time.Time
	CreatedAt time.Time
}

type AuditEvent struct {
	ID         string    `json:"id"`
	TenantID   string    `json:"tenant_id"`
	ActorID    string    `json:"actor_id"`
	ActorEmail string    `json:"actor_email"`
	Action     string    `json:"action"`
	TargetType string    `json:"target_type"`
	TargetID   string    `json:"target_id"`
	Detail     string    `json:"detail"`
	RemoteAddr string    `json:"remote_addr"`
	CreatedAt  time.Time `json:"created_at"`
}

// IdentityProvider is a tenant's OIDC provider. The client secret is stored
// sealed (see pkg/platform/crypto); the store never sees it in clear.
type IdentityProvider struct {
	ID                 string    `json:"id"`
	TenantID           string    `json:"tenant_id"`
	Name               string    `json:"name"`
	Issuer             string    `json:"issuer"`
	ClientID           string    `json:"client_id"`
	ClientSecretSealed string    `json:"-"`
	CreatedAt          time.Time `json:"created_at"`
}

// OIDCState is one in-flight OIDC authorization (state, nonce, PKCE verifier).
type OIDCState struct {
	StateHash    string
	TenantID     string
	IdPID        string
	Nonce        string
	CodeVerifier string
	ExpiresAt    time.Time
}

// Page requests a slice of a newest-first list: items with id < Before.
type Page struct {
	Before string
	Limit  int
}

// Store is everything exo-app persists.
type Store interface {
	Ping(ctx context.Context) error
	Close() error
	// Dialect is "sqlite" or "postgres".
	Dialect() string

	// SignUp creates a user, a new tenant with its seeded roles and makes the
	// user the tenant's admin, atomically.
	SignUp(ctx context.Context, u User, tenantName string) (User, Tenant, error)
	// CreateTenant creates a tenant with seeded roles and makes ownerID its admin.
	CreateTenant(ctx context.Context, name, ownerID string) (Tenant, error)
	GetTenant(ctx context.Context, tenantID string) (Tenant, error)
	RenameTenant(ctx context.Context, tenantID, name string) (Tenant, error)

	// Global identity lookups (a user exists across tenants).
	GetUser(ctx context.Context, id string) (User, error)
	GetUserByEmail(ctx context.Context, email string) (User, error)
	SetPasswordHash(ctx context.Context, userID, hash string) error
	// EnsureOIDCUser returns the user with that e-mail, creating it (without a
	// password) if needed, and makes it a member of tenantID with the seeded
	// member role unless it already is a member.
	EnsureOIDCUser(ctx context.Context, tenantID string, u User) (User, error)

	ListMemberships(ctx context.Context, userID string) ([]Membership, error)
	GetMembership(ctx context.Context, tenantID, userID string) (Membership, error)

	ListMembers(ctx context.Context, tenantID string) ([]Member, error)
	SetMemberRole(ctx context.Context, tenantID, userID, roleID string) error
	RemoveMember(ctx context.Context, tenantID, userID string) error

	ListRoles(ctx context.Context, tenantID string) ([]Role, error)
	GetRole(ctx context.Context, tenantID, id string) (Role, error)
	CreateRole(ctx context.Context, tenantID string, r Role) (Role, error)
	UpdateRole(ctx context.Context, tenantID string, r Role) (Role, error)
	DeleteRole(ctx context.Context, tenantID, id string) error

	CreateDeployment(ctx context.Context, tenantID string, d Deployment, tokenHash string) (Deployment, error)
	ListDeployments(ctx context.Context, tenantID string) ([]Deployment, error)
	GetDeployment(ctx context.Context, tenantID, id string) (Deployment, error)
	DeleteDeployment(ctx context.Context, tenantID, id string) error
	// RotateDeploymentToken replaces the token hash; the old token stops
	// matching GetDeploymentByTokenHash immediately.
	RotateDeploymentToken(ctx context.Context, tenantID, id, tokenHash, prefix string, issuedAt time.Time) (Deployment, error)
	// GetDeploymentByTokenHash is the operator tunnel's authentication lookup
	// (global: the token itself names the tenant).
	GetDeploymentByTokenHash(ctx context.Context, tokenHash string) (Deployment, error)
	// SetDeploymentStatus records a status and, when heartbeat is non-zero, the
	// time of the last heartbeat.
	SetDeploymentStatus(ctx context.Context, tenantID, id, status string, heartbeat time.Time) error

	CreateInvitation(ctx context.Context, inv Invitation, tokenHash string) (Invitation, error)
	ListInvitations(ctx context.Context, tenantID string) ([]Invitation, error)
	DeleteInvitation(ctx context.Context, tenantID, id string) error
	// PeekInvitation returns the pending invitation for a token hash without consuming it.
	PeekInvitation(ctx context.Context, tokenHash string, now time.Time) (Invitation, error)
	// AcceptInvitation consumes the invitation exactly once and makes the user
	// with its e-mail a member. newUser is created if no user has that e-mail.
	AcceptInvitation(ctx context.Context, tokenHash string, now time.Time, newUser User) (User, Invitation, error)

	CreatePasswordReset(ctx context.Context, pr PasswordReset, tokenHash string) error
	// ConsumePasswordReset uses the reset exactly once and sets the new hash.
	ConsumePasswordReset(ctx context.Context, tokenHash string, now time.Time, newPasswordHash string) (userID string, err error)

	// AppendAudit records an event that is not a change of stored state (a
	// sign-in, an operator connecting). A change is audited in its own
	// transaction instead: see WithAudit.
	AppendAudit(ctx context.Context, e AuditEvent) error
	ListAudit(ctx context.Context, tenantID string, p Page) ([]AuditEvent, error)

	CreateIdP(ctx context.Context, tenantID string, idp IdentityProvider) (IdentityProvider, error)
	ListIdPs(ctx context.Context, tenantID string) ([]IdentityProvider, error)
	GetIdP(ctx context.Context, tenantID, id string) (IdentityProvider, error)
	DeleteIdP(ctx context.Context, tenantID, id string) error

	SaveOIDCState(ctx context.Context, s OIDCState) error
	// ConsumeOIDCState deletes and returns the state; a second call fails.
	ConsumeOIDCState(ctx context.Context, stateHash string, now time.Time) (OIDCState, error)
}
