package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const jwtIssuer = "exo-app"

// Claims is the user JWT: who, which tenant was selected at login and the
// permissions the role granted then. Handlers re-check membership in the
// store on every request, so a removed member loses access immediately.
type Claims struct {
	Email       string   `json:"email"`
	TenantID    string   `json:"tid"`
	Permissions []string `json:"perms"`
	// Generation is the user's token generation when the token was issued;
	// the API refuses a token once the user's generation moved on (logout
	// everywhere, a new password, removal from a tenant).
	Generation int64 `json:"gen"`
	// TenantBound tokens open TenantID only (no X-Tenant-ID switch): a
	// sign-in through a tenant's own identity provider vouches for that
	// tenant and nothing else.
	TenantBound bool `json:"tb,omitempty"`
	jwt.RegisteredClaims
}

// Subject is whom a token is issued to.
type Subject struct {
	UserID, Email, TenantID string
	Permissions             []string
	Generation              int64
	TenantBound             bool
}

// Issuer mints and verifies HS256 user JWTs.
type Issuer struct {
	secret []byte
	expiry time.Duration
	now    func() time.Time
}

func NewIssuer(secret []byte, expiry time.Duration) *Issuer {
	return &Issuer{secret: secret, expiry: expiry, now: time.Now}
}

// Issue returns a signed token and its expiry.
func (i *Issuer) Issue(sub Subject) (string, time.Time, error) {
	now := i.now().UTC().Truncate(time.Second)
	exp := now.Add(i.expiry)
	c := Claims{
		Email:       sub.Email,
		TenantID:    sub.TenantID,
		Permissions: sub.Permissions,
		Generation:  sub.Generation,
		TenantBound: sub.TenantBound,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    jwtIssuer,
			Subject:   sub.UserID,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(i.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign jwt: %w", err)
	}
	return s, exp, nil
}

// Parse verifies signature, algorithm (HS256 only), issuer and expiry.
func (i *Issuer) Parse(token string) (*Claims, error) {
	c := &Claims{}
	_, err := jwt.ParseWithClaims(token, c, func(*jwt.Token) (any, error) { return i.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(jwtIssuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(i.now),
		// exo-app verifies only tokens it issued itself: the leeway covers
		// clock skew between its replicas, and keeps an expired token from
		// living on much past its expiry (an open shell re-checks it).
		jwt.WithLeeway(5*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("invalid token: %w", err)
	}
	if c.Subject == "" || c.TenantID == "" {
		return nil, errors.New("invalid token: missing subject or tenant")
	}
	return c, nil
}

// ticketIssuer is the issuer of tickets: a user token's parser (issuer
// "exo-app") refuses them, and a ticket's parser refuses user tokens.
const ticketIssuer = "exo-app/ticket"

// Ticket carries one step of a browser flow to the next (an OIDC sign-in to
// its completion, a link request to the provider's login), signed, short
// lived, for one purpose, and bound to the browser that holds the cookie
// whose hash is BrowserHash.
type Ticket struct {
	UserID      string `json:"uid,omitempty"`
	Email       string `json:"email,omitempty"`
	TenantID    string `json:"tid,omitempty"`
	IdPID       string `json:"idp,omitempty"`
	Generation  int64  `json:"gen,omitempty"`
	BrowserHash string `json:"bh"`
	jwt.RegisteredClaims
}

// IssueTicket signs t for purpose, valid for ttl.
func (i *Issuer) IssueTicket(purpose string, t Ticket, ttl time.Duration) (string, error) {
	now := i.now().UTC().Truncate(time.Second)
	t.RegisteredClaims = jwt.RegisteredClaims{
		Issuer:    ticketIssuer,
		Audience:  jwt.ClaimStrings{purpose},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, t).SignedString(i.secret)
	if err != nil {
		return "", fmt.Errorf("sign ticket: %w", err)
	}
	return s, nil
}

// ParseTicket verifies a ticket of purpose.
func (i *Issuer) ParseTicket(purpose, raw string) (*Ticket, error) {
	t := &Ticket{}
	_, err := jwt.ParseWithClaims(raw, t, func(*jwt.Token) (any, error) { return i.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(ticketIssuer),
		jwt.WithAudience(purpose),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(i.now),
	)
	if err != nil {
		return nil, fmt.Errorf("invalid ticket: %w", err)
	}
	return t, nil
}
