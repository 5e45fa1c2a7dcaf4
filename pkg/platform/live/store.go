package live

import (
	"context"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/perm"
	"github.com/exo-in-go/exo/pkg/platform/store"
)

// PublishingStore wraps a store so that every change to a deployment row —
// created, deleted, token rotated, status or heartbeat set by the operator
// tunnel — is published as a TypeDeployment event after it is committed.
// Wiring it in front of api.New makes the deployments list live without the
// tunnel or the handlers knowing about browsers.
//
// The wrapper embeds the store, so every method of store.Store it does not
// override reaches the wrapped store unchanged.
func PublishingStore(s store.Store, pub Publisher) store.Store {
	return &publishingStore{Store: s, pub: pub}
}

type publishingStore struct {
	store.Store
	pub Publisher
}

func (s *publishingStore) publish(change, tenantID, id, status string, heartbeat *time.Time) {
	s.pub.Publish(Event{
		TenantID: tenantID, DeploymentID: id, Type: TypeDeployment, Permission: perm.DeploymentsRead,
		Data: DeploymentStatus{DeploymentID: id, Status: status, LastHeartbeatAt: heartbeat, Removed: change == ChangeDeleted, Change: change},
	})
}

func (s *publishingStore) CreateDeployment(ctx context.Context, tenantID string, d store.Deployment, tokenHash string) (store.Deployment, error) {
	d, err := s.Store.CreateDeployment(ctx, tenantID, d, tokenHash)
	if err == nil {
		s.publish(ChangeCreated, d.TenantID, d.ID, d.Status, d.LastHeartbeatAt)
	}
	return d, err
}

func (s *publishingStore) DeleteDeployment(ctx context.Context, tenantID, id string) error {
	err := s.Store.DeleteDeployment(ctx, tenantID, id)
	if err == nil {
		s.publish(ChangeDeleted, tenantID, id, "", nil)
	}
	return err
}

func (s *publishingStore) RotateDeploymentToken(ctx context.Context, tenantID, id, tokenHash, prefix string, issuedAt time.Time) (store.Deployment, error) {
	d, err := s.Store.RotateDeploymentToken(ctx, tenantID, id, tokenHash, prefix, issuedAt)
	if err == nil {
		s.publish(ChangeTokenRotated, d.TenantID, d.ID, d.Status, d.LastHeartbeatAt)
	}
	return d, err
}

func (s *publishingStore) SetDeploymentStatus(ctx context.Context, tenantID, id, status string, heartbeat time.Time) error {
	err := s.Store.SetDeploymentStatus(ctx, tenantID, id, status, heartbeat)
	if err == nil {
		var hb *time.Time
		if !heartbeat.IsZero() {
			t := heartbeat.UTC()
			hb = &t
		}
		s.publish(ChangeStatus, tenantID, id, status, hb)
	}
	return err
}
