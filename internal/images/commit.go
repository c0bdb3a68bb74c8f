package images

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/reference"
)

// CommitOptions describe an image made from another one: a new config,
// and a layer on top, or none.
type CommitOptions struct {
	// Parent is the image built on; nil starts from scratch.
	Parent *Resolved
	// Platform is a scratch image's platform; zero means the host.
	Platform reference.Platform
	// Config is the new image's container config.
	Config v1.Config
	// Layer writes the new layer as an uncompressed tar; nil adds none
	// (an empty-layer history entry, as Docker's metadata steps).
	Layer func(w io.Writer) error
	// CreatedBy and Comment are the history entry's.
	CreatedBy, Comment string
	// Created is the image's time; zero means now.
	Created time.Time
	// BuildCache marks a build step's image (see Image.BuildCache).
	BuildCache bool
}

// Commit stores a new image: the parent's layers and history, the new
// layer (compressed and unpacked in one pass, its digests computed from
// the bytes) and a config and manifest written content-addressed. The
// same parent, config, layer bytes and time give the same image ID.
func (s *Service) Commit(ctx context.Context, o CommitOptions) (Image, error) {
	lease, err := s.lease(ctx)
	if err != nil {
		return Image{}, err
	}
	defer lease.Unlock()
	var cfg v1.ConfigFile
	var layers []ocispec.Descriptor
	if o.Parent != nil {
		cfg = *o.Parent.Config.DeepCopy()
		var man ocispec.Manifest
		if err := json.Unmarshal(o.Parent.ManifestBytes, &man); err != nil {
			return Image{}, fmt.Errorf("committing: parent manifest: %w", err)
		}
		layers = man.Layers
	} else {
		p := o.Platform
		if p == (reference.Platform{}) {
			p = reference.HostPlatform()
		}
		p = p.Normalize()
		cfg = v1.ConfigFile{Architecture: p.Architecture, OS: p.OS, Variant: p.Variant, RootFS: v1.RootFS{Type: "layers"}}
	}
	created := o.Created
	if created.IsZero() {
		created = time.Now().UTC()
	}
	cfg.Config = o.Config
	cfg.Created = v1.Time{Time: created}
	cfg.Container, cfg.DockerVersion = "", ""
	hist := v1.History{Created: cfg.Created, CreatedBy: o.CreatedBy, Comment: o.Comment, EmptyLayer: o.Layer == nil}
	if o.Layer != nil {
		desc, diffID, err := s.storeLayer(ctx, o.Layer)
		if err != nil {
			return Image{}, fmt.Errorf("committing: %w", err)
		}
		h, err := v1.NewHash(diffID.String())
		if err != nil {
			return Image{}, err
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, h)
		layers = append(layers, desc)
	}
	cfg.History = append(cfg.History, hist)
	out, err := s.putImage(ctx, cfg, layers, Image{BuildCache: o.BuildCache})
	if err != nil {
		return Image{}, fmt.Errorf("committing: %w", err)
	}
	return out, nil
}

// putImage writes an image's config and OCI manifest, content-addressed,
// and records it (with rec's tags and flags).
func (s *Service) putImage(ctx context.Context, cfg v1.ConfigFile, layers []ocispec.Descriptor, rec Image) (Image, error) {
	cb, err := json.Marshal(cfg)
	if err != nil {
		return Image{}, err
	}
	cd, err := s.Content.WriteBlob(ctx, "", cb)
	if err != nil {
		return Image{}, fmt.Errorf("storing config: %w", err)
	}
	if layers == nil {
		layers = []ocispec.Descriptor{}
	}
	man := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(cb))},
		Layers:    layers,
	}
	man.SchemaVersion = 2
	mb, err := json.Marshal(man)
	if err != nil {
		return Image{}, err
	}
	md, err := s.Content.WriteBlob(ctx, "", mb)
	if err != nil {
		return Image{}, fmt.Errorf("storing manifest: %w", err)
	}
	rec.ID = cd
	rec.Manifest = ocispec.Descriptor{MediaType: man.MediaType, Digest: md, Size: int64(len(mb))}
	out, err := s.Records.Put(ctx, rec)
	if err != nil {
		return Image{}, fmt.Errorf("recording image: %w", err)
	}
	return out, nil
}

// storeLayer runs write into a pipe, unpacks the tar into a new snapshot
// and stores it gzip-compressed; it returns the blob's descriptor and the
// layer's diffID.
func (s *Service) storeLayer(ctx context.Context, write func(io.Writer) error) (ocispec.Descriptor, digest.Digest, error) {
	tmp, err := s.Content.TempDir("commit-")
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer os.RemoveAll(tmp)
	in, err := s.Layers.Prepare(ctx)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer in.Abort() // no-op once committed
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(write(pw)) }()
	desc, diffID, err := compressLayer(ctx, pr, filepath.Join(tmp, "layer"), in)
	pr.CloseWithError(fmt.Errorf("layer not read to its end"))
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("writing the layer: %w", err)
	}
	f, err := os.Open(filepath.Join(tmp, "layer"))
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	err = s.Content.Ingest(ctx, desc.Digest, desc.Size, f)
	f.Close()
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("storing the layer: %w", err)
	}
	if err := in.Commit(ctx, diffID); err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("unpacking the layer: %w", err)
	}
	return desc, diffID, nil
}

// PruneBuildCache removes the build steps' images nothing names (and no
// container uses, when inUse is set), then collects garbage.
func (s *Service) PruneBuildCache(ctx context.Context, inUse func(digest.Digest) bool) ([]Image, GCResult, error) {
	removed, err := s.Records.RemoveIf(ctx, func(img Image) bool {
		return img.BuildCache && img.Dangling() && (inUse == nil || !inUse(img.ID))
	})
	if err != nil {
		return nil, GCResult{}, err
	}
	gc, err := s.GC(ctx, GCOptions{})
	return removed, gc, err
}
