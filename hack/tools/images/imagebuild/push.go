package imagebuild

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PushTarget is where an archive named name goes: registry/<last path element of its
// repository>:tag. An empty registry or tag keeps the archive's own; a registry of
// "localhost:5000/team" gives "localhost:5000/team/agentkube-manager:<tag>".
func PushTarget(archiveName, registry, tag string) (name.Tag, error) {
	src, err := name.NewTag(archiveName, name.StrictValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("archive name %q: %w", archiveName, err)
	}
	repo := src.Context().Name()
	if registry != "" {
		repo = strings.TrimSuffix(registry, "/") + "/" + path.Base(src.RepositoryStr())
	}
	if tag == "" {
		tag = src.TagStr()
	}
	t, err := name.NewTag(repo+":"+tag, name.StrictValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("push target %s:%s: %w", repo, tag, err)
	}
	return t, nil
}

// Push uploads an opened archive's image or index (with every child manifest, config and
// layer) to ref. Credentials come from the Docker config (~/.docker/config.json, the
// helpers it names), as crane and docker read them, unless opts sets others.
func Push(ctx context.Context, a *Archive, ref name.Reference, opts ...remote.Option) error {
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts...)
	t, ok := a.Artifact.(remote.Taggable)
	if !ok {
		return fmt.Errorf("pushing %s: %T has no manifest", a.Name, a.Artifact)
	}
	if err := remote.Push(ref, t, opts...); err != nil {
		return fmt.Errorf("pushing %s to %s: %w", a.Name, ref, err)
	}
	return nil
}
