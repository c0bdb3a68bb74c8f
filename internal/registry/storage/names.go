package storage

import (
	_ "crypto/sha256" // digest algorithms a registry accepts
	_ "crypto/sha512"
	"fmt"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/errdefs"
)

// The distribution spec's grammar for repository names and tags.
var (
	nameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// MaxNameLength bounds a repository name (the spec's suggested limit,
// which also keeps paths on disk short).
const MaxNameLength = 255

// ValidName checks a repository name.
func ValidName(name string) error {
	if len(name) > MaxNameLength {
		return errdefs.Invalidf("repository name is longer than %d characters", MaxNameLength)
	}
	if !nameRE.MatchString(name) {
		return errdefs.Invalidf("invalid repository name %q: lower-case letters, digits and separators (. _ __ -), path components joined by /", name)
	}
	return nil
}

// ValidTag checks a tag.
func ValidTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return errdefs.Invalidf("invalid tag %q: up to 128 of letters, digits, _ . -, not starting with . or -", tag)
	}
	return nil
}

// ParseDigest reads a digest of an algorithm the registry can verify.
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", errdefs.Invalidf("invalid digest %q: %v", s, err)
	}
	if !d.Algorithm().Available() {
		return "", errdefs.Invalidf("invalid digest %q: unsupported algorithm %s", s, d.Algorithm())
	}
	return d, nil
}

func blobKey(d digest.Digest) string {
	h := d.Encoded()
	return fmt.Sprintf("blobs/%s/%s/%s/data", d.Algorithm(), h[:2], h)
}

// pendingKey is where a collection holds blob d while it decides.
func pendingKey(d digest.Digest) string {
	return strings.TrimSuffix(blobKey(d), "/data") + "/gc-pending"
}

func repoKey(name string) string { return "repositories/" + name }

func layerLinkKey(name string, d digest.Digest) string {
	return fmt.Sprintf("%s/_layers/%s/%s/link", repoKey(name), d.Algorithm(), d.Encoded())
}

func revisionsKey(name string) string { return repoKey(name) + "/_manifests/revisions" }

func revisionKey(name string, d digest.Digest) string {
	return fmt.Sprintf("%s/%s/%s/link", revisionsKey(name), d.Algorithm(), d.Encoded())
}

func tagsKey(name string) string { return repoKey(name) + "/_manifests/tags" }

func tagKey(name, tag string) string { return tagsKey(name) + "/" + tag + "/current/link" }

func referrersKey(name string, subject digest.Digest) string {
	return fmt.Sprintf("%s/_referrers/%s/%s", repoKey(name), subject.Algorithm(), subject.Encoded())
}

func uploadsKey(name string) string { return repoKey(name) + "/_uploads" }

func uploadKey(name, id string) string { return uploadsKey(name) + "/" + id }
