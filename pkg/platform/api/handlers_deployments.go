package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/auth"
	"github.com/exo-in-go/exo/pkg/platform/httpapi"
	"github.com/exo-in-go/exo/pkg/platform/store"
)

// deploymentWithToken is the only response that ever carries a raw token:
// create and rotate. It is never stored or logged.
type deploymentWithToken struct {
	Deployment store.Deployment `json:"deployment"`
	Token      string           `json:"token"`
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request, p *Principal) {
	ds, err := s.store.ListDeployments(r.Context(), p.TenantID)
	if err != nil {
		s.storeError(w, r, "deployments", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, list[store.Deployment]{Items: ds})
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request, p *Principal) {
	d, err := s.store.GetDeployment(r.Context(), p.TenantID, r.PathValue("id"))
	if err != nil {
		s.storeError(w, r, "deployment", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, d)
}

func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req struct {
		Name string `json:"name"`
	}
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	name, msg := validName("name", req.Name)
	if msg != "" {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_name", msg)
		return
	}
	tok, hash, prefix, err := auth.NewDeploymentToken()
	if err != nil {
		s.internal(w, r, "deployment token", err)
		return
	}
	ctx := s.audited(r, p, "deployment.create", "deployment", "", map[string]any{"name": name, "token_prefix": prefix})
	d, err := s.store.CreateDeployment(ctx, p.TenantID, store.Deployment{Name: name, TokenPrefix: prefix, CreatedBy: p.UserID}, hash)
	if err != nil {
		s.storeError(w, r, "deployment", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, deploymentWithToken{Deployment: d, Token: tok})
}

func (s *Server) deleteDeployment(w http.ResponseWriter, r *http.Request, p *Principal) {
	id := r.PathValue("id")
	if err := s.store.DeleteDeployment(s.audited(r, p, "deployment.delete", "deployment", id, nil), p.TenantID, id); err != nil {
		s.storeError(w, r, "deployment", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) rotateDeployment(w http.ResponseWriter, r *http.Request, p *Principal) {
	id := r.PathValue("id")
	tok, hash, prefix, err := auth.NewDeploymentToken()
	if err != nil {
		s.internal(w, r, "deployment token", err)
		return
	}
	ctx := s.audited(r, p, "deployment.rotate_token", "deployment", id, map[string]any{"token_prefix": prefix})
	d, err := s.store.RotateDeploymentToken(ctx, p.TenantID, id, hash, prefix, time.Now())
	if err != nil {
		s.storeError(w, r, "deployment", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, deploymentWithToken{Deployment: d, Token: tok})
}

// AuthenticateDeployment resolves a presented deployment token to its
// deployment. The lookup is by SHA-256; the stored hash is compared again in
// constant time so the check never depends on database string comparison.
// The operator tunnel uses this for /api/agentkube/connect.
func (s *Server) AuthenticateDeployment(ctx context.Context, token string) (store.Deployment, error) {
	if !auth.ValidDeploymentTokenFormat(token) {
		return store.Deployment{}, errNoDeploymentToken
	}
	d, err := s.store.GetDeploymentByTokenHash(ctx, auth.HashToken(token))
	if err != nil {
		return store.Deployment{}, err
	}
	if !auth.TokenMatches(token, d.TokenHash) {
		return store.Deployment{}, store.ErrNotFound
	}
	return d, nil
}

func (s *Server) deploymentWhoami(w http.ResponseWriter, r *http.Request) {
	tok, ok := BearerToken(r)
	if !ok {
		httpapi.WriteError(w, http.StatusUnauthorized, "unauthorized", "missing deployment token")
		return
	}
	d, err := s.AuthenticateDeployment(r.Context(), tok)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, errNoDeploymentToken) {
		httpapi.WriteError(w, http.StatusUnauthorized, "unauthorized", "invalid deployment token")
		return
	} else if err != nil {
		s.storeError(w, r, "deployment", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"deployment_id": d.ID, "tenant_id": d.TenantID, "name": d.Name, "token_prefix": d.TokenPrefix})
}
