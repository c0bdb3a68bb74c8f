package storage

import (
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The manifest media types a registry stores: OCI's, and Docker's
// schema 2 (which the docker CLI still pushes).
const (
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// MaxManifestSize is the default bound on a manifest's size (the
// distribution spec's 4 MiB).
const MaxManifestSize = 4 << 20

// Manifest is a parsed manifest or index: what the registry checks and
// indexes.
type Manifest struct {
	MediaType    string
	ArtifactType string
	// Config and Layers (an image manifest), or Manifests (an index).
	Config      *ocispec.Descriptor
	Layers      []ocispec.Descriptor
	Manifests   []ocispec.Descriptor
	Subject     *ocispec.Descriptor
	Annotations map[string]string
}

// IsIndex reports an index or manifest list.
func (m *Manifest) IsIndex() bool {
	return m.MediaType == ocispec.MediaTypeImageIndex || m.MediaType == MediaTypeDockerList
}

// EffectiveArtifactType is what the referrers API reports: the
// artifactType field, else (for an image manifest) the config's type.
func (m *Manifest) EffectiveArtifactType() string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	if m.Config != nil && !m.IsIndex() {
		return m.Config.MediaType
	}
	return ""
}

type rawManifest struct {
	SchemaVersion *int                 `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
}

// ParseManifest reads and checks a manifest body. contentType is the
// request's Content-Type ("" if none): when the body names its media
// type, the two must agree.
func ParseManifest(body []byte, contentType string) (*Manifest, error) {
	var raw rawManifest
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("manifest is not valid JSON: %v", err)
	}
	if raw.SchemaVersion == nil || *raw.SchemaVersion != 2 {
		return nil, fmt.Errorf("manifest schemaVersion must be 2")
	}
	mt := raw.MediaType
	switch {
	case mt != "" && contentType != "" && isManifestType(contentType) && mt != contentType:
		return nil, fmt.Errorf("manifest mediaType %q does not match the Content-Type %q", mt, contentType)
	case mt == "" && isManifestType(contentType):
		mt = contentType
	case mt == "" && raw.Manifests != nil:
		mt = ocispec.MediaTypeImageIndex
	case mt == "":
		mt = ocispec.MediaTypeImageManifest
	}
	if !isManifestType(mt) {
		return nil, fmt.Errorf("unsupported manifest media type %q", mt)
	}
	m := &Manifest{MediaType: mt, ArtifactType: raw.ArtifactType, Config: raw.Config, Layers: raw.Layers, Manifests: raw.Manifests, Subject: raw.Subject, Annotations: raw.Annotations}
	if m.IsIndex() {
		if raw.Config != nil || raw.Layers != nil {
			return nil, fmt.Errorf("an index has manifests, not config or layers")
		}
		for i, d := range m.Manifests {
			if err := checkDescriptor(d); err != nil {
				return nil, fmt.Errorf("manifests[%d]: %v", i, err)
			}
		}
	} else {
		if raw.Manifests != nil {
			return nil, fmt.Errorf("an image manifest has config and layers, not manifests")
		}
		if m.Config == nil {
			return nil, fmt.Errorf("an image manifest needs a config")
		}
		if err := checkDescriptor(*m.Config); err != nil {
			return nil, fmt.Errorf("config: %v", err)
		}
		for i, d := range m.Layers {
			if err := checkDescriptor(d); err != nil {
				return nil, fmt.Errorf("layers[%d]: %v", i, err)
			}
		}
	}
	if m.Subject != nil {
		if err := checkDescriptor(*m.Subject); err != nil {
			return nil, fmt.Errorf("subject: %v", err)
		}
	}
	return m, nil
}

func isManifestType(t string) bool {
	switch t {
	case ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex, MediaTypeDockerManifest, MediaTypeDockerList:
		return true
	}
	return false
}

func checkDescriptor(d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v", d.Digest, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("negative size %d", d.Size)
	}
	if d.MediaType == "" {
		return fmt.Errorf("descriptor %s has no mediaType", d.Digest)
	}
	return nil
}

// references lists what must already be in the repository for a manifest
// to be accepted: blobs (config, layers) and manifests (an index's).
func (m *Manifest) references() (blobs, manifests []digest.Digest) {
	if m.IsIndex() {
		for _, d := range m.Manifests {
			manifests = append(manifests, d.Digest)
		}
		return nil, manifests
	}
	blobs = append(blobs, m.Config.Digest)
	for _, d := range m.Layers {
		if len(d.URLs) > 0 {
			continue // a foreign layer lives elsewhere
		}
		blobs = append(blobs, d.Digest)
	}
	return blobs, nil
}
