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
	jwt.RegisteredClaims
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
func (i *Issuer) Issue(userID, email, tenantID string, perms []string) (string, time.Time, error) {
	now := i.now().UTC().Truncate(time.Second)
	exp := now.Add(i.expiry)
	c := Claims{
		Email:       email,
		TenantID:    tenantID,
		Permissions: perms,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    jwtIssuer,
			Subject:   userID,
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
		jwt.WithLeeway(30*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("invalid token: %w", err)
	}
	if c.Subject == "" || c.TenantID == "" {
		return nil, errors.New("invalid token: missing subject or tenant")
	}
	return c, nil
}
