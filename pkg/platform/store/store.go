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
	// ErrLastAdmin refuses a change that would leave a tenant without a
	// member holding every permission (nobody could administer it again).
	ErrLastAdmin = errors.New("the tenant's last member with every permission")
	// ErrBuiltin refuses a change to a built-in role.
	ErrBuiltin = errors.New("built-in role")
	// ErrNotPermitted refuses a change to a member or role that holds
	// permissions the caller does not hold: nobody edits, grants or takes
	// away more than they have.
	ErrNotPermitted = errors.New("holds permissions the caller does not")
	// ErrSignInRequired refuses to act for an existing account without that
	// account's own sign-in (accepting an invitation into it).
	ErrSignInRequired = errors.New("the account's own sign-in is required")
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
	ID           string `json:"id"`
	Email        string `json:"email"`
	Name         string `json:"name"`
	PasswordHash string `json:"-"`
	// IdPID is the identity provider that created the account; empty for a
	// password account. Such an account's e-mail is only what that provider
	// asserted: it is never matched by e-mail (sign-in, invitations, resets).
	IdPID string `json:"idp_id,omitempty"`
	// TokenGeneration is bumped to revoke every token issued before.
	TokenGeneration int64     `json:"-"`
	CreatedAt       time.Time `json:"created_at"`
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
	// TokenGeneration is the user's: tokens of an older one are revoked.
	TokenGeneration int64 `json:"-"`
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
	ID                 string `json:"id"`
	TenantID           string `json:"tenant_id"`
	Name               string `json:"name"`
	Issuer             string `json:"issuer"`
	ClientID           string `json:"client_id"`
	ClientSecretSealed string `json:"-"`
	// AllowedDomains, when not empty, are the only e-mail domains the
	// provider may sign in.
	AllowedDomains []string `json:"allowed_domains"`
	// DefaultRoleID is the role of a member the provider provisions (the
	// built-in no-access role unless an administrator chose another).
	DefaultRoleID string    `json:"default_role_id"`
	CreatedAt     time.Time `json:"created_at"`
}

// OIDCState is one in-flight OIDC authorization (state, nonce, PKCE verifier).
type OIDCState struct {
	StateHash    string
	TenantID     string
	IdPID        string
	Nonce        string
	CodeVerifier string
	// LinkUserID is set when a signed-in user started the flow to link the
	// provider's identity to their account, rather than to sign in.
	LinkUserID string
	// BrowserHash is the hash of the cookie that binds the flow to the
	// browser that started it.
	BrowserHash string
	ExpiresAt   time.Time
}

// PendingSignup is a sign-up waiting for its e-mail address to be confirmed.
type PendingSignup struct {
	Email        string
	Name         string
	PasswordHash string
	TenantName   string
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
	// GetUserByEmail finds a password account (never one an identity
	// provider created) by its e-mail.
	GetUserByEmail(ctx context.Context, email string) (User, error)
	// ChangePassword sets a new hash and revokes every token issued before.
	ChangePassword(ctx context.Context, userID, hash string) error
	// RevokeTokens bumps the user's token generation: every token issued
	// before stops working.
	RevokeTokens(ctx context.Context, userID string) error
	// SignInWithIdP returns the user the identity (idp, subject) belongs to.
	// An unknown identity gets a new account owned by the provider (never an
	// existing account with the same e-mail) with email and name from u. The
	// user becomes a member of the provider's tenant with its default role
	// unless it already is one.
	SignInWithIdP(ctx context.Context, idp IdentityProvider, subject string, u User) (User, error)
	// LinkIdentity links the identity (idp, subject) to an existing user
	// who proved it by signing in; ErrConflict if the identity is taken.
	LinkIdentity(ctx context.Context, idp IdentityProvider, subject, email, userID string) error

	// CreatePendingSignup keeps a sign-up until its link is used.
	CreatePendingSignup(ctx context.Context, p PendingSignup, tokenHash string) error
	// ConfirmSignup consumes the pending sign-up once and signs up.
	ConfirmSignup(ctx context.Context, tokenHash string, now time.Time) (User, Tenant, error)
	// SweepExpired deletes expired single-use rows (OIDC states, pending
	// sign-ups, password resets).
	SweepExpired(ctx context.Context, now time.Time) error

	ListMemberships(ctx context.Context, userID string) ([]Membership, error)
	GetMembership(ctx context.Context, tenantID, userID string) (Membership, error)

	ListMembers(ctx context.Context, tenantID string) ([]Member, error)
	// SetMemberRole and RemoveMember act for a caller holding callerPerms:
	// ErrNotPermitted if the member's role (or the new one) holds more. They
	// refuse with ErrLastAdmin to leave the tenant without a member holding
	// every permission. RemoveMember also revokes the removed user's tokens.
	SetMemberRole(ctx context.Context, tenantID, userID, roleID string, callerPerms []string) error
	RemoveMember(ctx context.Context, tenantID, userID string, callerPerms []string) error

	ListRoles(ctx context.Context, tenantID string) ([]Role, error)
	GetRole(ctx context.Context, tenantID, id string) (Role, error)
	CreateRole(ctx context.Context, tenantID string, r Role) (Role, error)
	// UpdateRole and DeleteRole refuse built-in roles (ErrBuiltin) and roles
	// holding permissions beyond callerPerms (ErrNotPermitted); an update
	// that would leave no member with every permission fails with ErrLastAdmin.
	UpdateRole(ctx context.Context, tenantID string, r Role, callerPerms []string) (Role, error)
	DeleteRole(ctx context.Context, tenantID, id string, callerPerms []string) error

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
	// AcceptInvitation consumes the invitation exactly once and makes the
	// password account with its e-mail a member: only if signedInUserID is
	// that account (ErrSignInRequired otherwise). newUser is created if no
	// account has that e-mail.
	AcceptInvitation(ctx context.Context, tokenHash string, now time.Time, newUser User, signedInUserID string) (User, Invitation, error)

	CreatePasswordReset(ctx context.Context, pr PasswordReset, tokenHash string) error
	// PeekPasswordReset checks that a reset token is valid without using it.
	PeekPasswordReset(ctx context.Context, tokenHash string, now time.Time) error
	// ConsumePasswordReset uses the reset exactly once, sets the new hash
	// and revokes every token issued before.
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

	// Browser shell sessions and the tenant's shell settings
	// (pkg/platform/shell; shell_sessions.go).
	CreateShellSession(ctx context.Context, s ShellSession) error
	EndShellSession(ctx context.Context, tenantID, id string, end ShellSessionEnd) error
	ListShellSessions(ctx context.Context, tenantID string, p Page) ([]ShellSession, error)
	GetShellSession(ctx context.Context, tenantID, id string) (ShellSession, error)
	GetShellSettings(ctx context.Context, tenantID string) (ShellSettings, error)
	SetShellSettings(ctx context.Context, tenantID string, s ShellSettings) (ShellSettings, error)
	// ExpireShellRecording records that an ended session's recording file
	// is being removed (retention): the session stays listed, without a
	// recording. ErrNotFound when no such ended session has one.
	ExpireShellRecording(ctx context.Context, tenantID, id string) error
}
