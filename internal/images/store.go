// Package images holds berth's image records (which names point at which
// image) and the operations on images: pull, push, save, load, import,
// tag, remove and garbage collection. It is a library: the CLI today and
// the daemon next call it; it never prints, it reports progress through a
// callback.
//
// An image is identified, as in Docker, by the digest of its config (the
// image ID). A record holds the manifest that describes it (and the index it
// came from, if any), its tags (RepoTags) and the digests it was pulled or
// pushed by (RepoDigests). A tag names exactly one image; tagging another
// image with it moves it, and an image left without tags or digests is
// "dangling" until `image prune` removes it.
//
// Records live in one JSON file replaced atomically under a flock, so
// several berth processes can share a root and a crash never leaves a
// half-written record or a tag pointing at content that is not committed
// (records are written only after their blobs are).
package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/atomicfile"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/reference"
)

// Image is one image record.
type Image struct {
	// ID is the config digest.
	ID digest.Digest `json:"id"`
	// Manifest is the platform-specific manifest describing the image.
	Manifest ocispec.Descriptor `json:"manifest"`
	// Index is the index or manifest list the manifest was chosen from,
	// kept so that RepoDigests can name it as Docker does.
	Index *ocispec.Descriptor `json:"index,omitempty"`
	// RepoTags are fully qualified "docker.io/library/busybox:latest".
	RepoTags []string `json:"repoTags,omitempty"`
	// RepoDigests are fully qualified "docker.io/library/busybox@sha256:...".
	RepoDigests []string `json:"repoDigests,omitempty"`
	// Sources are repositories (full names) the layers are known to exist
	// in, used to mount them instead of uploading on push.
	Sources []string `json:"sources,omitempty"`
	// Stored is when the record was first written.
	Stored time.Time `json:"stored"`
	// BuildCache marks a build step's image: hidden from the image list
	// while nothing names it (as Docker's intermediate images), and
	// removed by `builder prune`.
	BuildCache bool `json:"buildCache,omitempty"`
}

// Dangling reports whether nothing names the image.
func (i *Image) Dangling() bool { return len(i.RepoTags) == 0 && len(i.RepoDigests) == 0 }

type dbFile struct {
	Version int               `json:"version"`
	Images  map[string]*Image `json:"images"`
}

const dbVersion = 1

// Store holds image records under a directory.
type Store struct {
	dir string
}

// NewStore opens (creating if needed) the record store in dir.
func NewStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating image metadata: %w", err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path() string { return filepath.Join(s.dir, "images.json") }

// Lock takes the store's exclusive lock; operations that must see and change
// records together (pull's final step, GC) hold it.
func (s *Store) Lock(ctx context.Context) (*atomicfile.Lock, error) {
	return atomicfile.Acquire(ctx, filepath.Join(s.dir, "lock"))
}

func (s *Store) read() (*dbFile, error) {
	b, err := os.ReadFile(s.path())
	if errors.Is(err, fs.ErrNotExist) {
		return &dbFile{Version: dbVersion, Images: map[string]*Image{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var db dbFile
	if err := json.Unmarshal(b, &db); err != nil {
		return nil, errdefs.DataLoss(fmt.Errorf("image records %s are corrupt: %v", s.path(), err))
	}
	if db.Version != dbVersion {
		return nil, errdefs.FailedPrecondition(fmt.Errorf("image records %s: version %d, this berth reads %d", s.path(), db.Version, dbVersion))
	}
	if db.Images == nil {
		db.Images = map[string]*Image{}
	}
	return &db, nil
}

func (s *Store) write(db *dbFile) error {
	b, err := json.MarshalIndent(db, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.path(), b, 0o600)
}

// List returns all records sorted newest first.
func (s *Store) List(ctx context.Context) ([]Image, error) {
	db, err := s.read()
	if err != nil {
		return nil, err
	}
	out := make([]Image, 0, len(db.Images))
	for _, img := range db.Images {
		out = append(out, *img)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Stored.Equal(out[j].Stored) {
			return out[i].Stored.After(out[j].Stored)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Get finds an image by name[:tag], name@digest, full or short ID.
func (s *Store) Get(ctx context.Context, nameOrID string) (Image, error) {
	db, err := s.read()
	if err != nil {
		return Image{}, err
	}
	img, err := find(db, nameOrID)
	if err != nil {
		return Image{}, err
	}
	return *img, nil
}

// find resolves a user's image argument the way Docker does: a full ID
// ("sha256:..." or 64 hex digits) first, then a name (name:tag,
// name@digest), and only if no name matches, a unique ID prefix, so that an
// image named "b12d5" is found by that name even when another image's ID
// starts with those digits.
func find(db *dbFile, arg string) (*Image, error) {
	if img, ok := db.Images[arg]; ok {
		return img, nil
	}
	hexPart := strings.TrimPrefix(arg, "sha256:")
	byID := func() (*Image, error) {
		var match *Image
		for id, img := range db.Images {
			if strings.HasPrefix(digest.Digest(id).Encoded(), hexPart) {
				if match != nil {
					return nil, errdefs.InvalidArgument(fmt.Errorf("image ID prefix %q is ambiguous", arg))
				}
				match = img
			}
		}
		if match == nil {
			return nil, errdefs.NotFoundf("no such image: %s", arg)
		}
		return match, nil
	}
	if strings.HasPrefix(arg, "sha256:") || (len(hexPart) == 64 && isHex(hexPart)) {
		return byID()
	}
	ref, err := reference.Parse(arg)
	if err != nil {
		if isHex(hexPart) {
			return byID()
		}
		return nil, err
	}
	for _, img := range db.Images {
		if ref.Digest() != "" {
			if slices.Contains(img.RepoDigests, ref.Name()+"@"+ref.Digest().String()) {
				return img, nil
			}
			continue
		}
		if slices.Contains(img.RepoTags, ref.String()) {
			return img, nil
		}
	}
	if isHex(hexPart) {
		if img, err := byID(); err == nil || errdefs.IsInvalidArgument(err) {
			return img, err
		}
	}
	return nil, errdefs.NotFoundf("no such image: %s", ref.Familiar())
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// Put stores img, merging with an existing record of the same ID, and moves
// every tag in img.RepoTags onto it (taking it from any other image).
// Callers must have committed all the image's blobs first.
func (s *Store) Put(ctx context.Context, img Image) (Image, error) {
	var out Image
	err := s.update(ctx, func(db *dbFile) error {
		key := img.ID.String()
		cur, ok := db.Images[key]
		if !ok {
			c := img
			c.RepoTags, c.RepoDigests, c.Sources = nil, nil, nil
			if c.Stored.IsZero() {
				c.Stored = time.Now().UTC()
			}
			cur = &c
			db.Images[key] = cur
		} else {
			// A newer pull may bring the manifest from another index.
			cur.Manifest = img.Manifest
			// A build's result may be a cached step: it is an image now.
			cur.BuildCache = cur.BuildCache && img.BuildCache
			if img.Index != nil {
				cur.Index = img.Index
			}
		}
		for _, t := range img.RepoTags {
			moveTag(db, t, cur)
		}
		for _, d := range img.RepoDigests {
			moveDigest(db, d, cur)
		}
		for _, src := range img.Sources {
			if !slices.Contains(cur.Sources, src) {
				cur.Sources = append(cur.Sources, src)
			}
		}
		out = *cur
		return nil
	})
	return out, err
}

func moveTag(db *dbFile, tag string, to *Image) {
	for _, img := range db.Images {
		if img != to {
			img.RepoTags = slices.DeleteFunc(img.RepoTags, func(t string) bool { return t == tag })
		}
	}
	if !slices.Contains(to.RepoTags, tag) {
		to.RepoTags = append(to.RepoTags, tag)
		sort.Strings(to.RepoTags)
	}
}

// moveDigest records name@digest on to, taking it from any other image, as
// Docker does (a digest names one image per repository).
func moveDigest(db *dbFile, rd string, to *Image) {
	for _, img := range db.Images {
		if img != to && slices.Contains(img.RepoDigests, rd) {
			img.RepoDigests = slices.DeleteFunc(img.RepoDigests, func(t string) bool { return t == rd })
		}
	}
	if !slices.Contains(to.RepoDigests, rd) {
		to.RepoDigests = append(to.RepoDigests, rd)
		sort.Strings(to.RepoDigests)
	}
}

func (s *Store) update(ctx context.Context, fn func(*dbFile) error) error {
	l, err := s.Lock(ctx)
	if err != nil {
		return err
	}
	defer l.Unlock()
	return s.updateLocked(fn)
}

// updateLocked is update for callers that hold Lock.
func (s *Store) updateLocked(fn func(*dbFile) error) error {
	db, err := s.read()
	if err != nil {
		return err
	}
	if err := fn(db); err != nil {
		return err
	}
	return s.write(db)
}

// Tag points the reference target (name:tag) at the image src names.
func (s *Store) Tag(ctx context.Context, src string, target reference.Reference) (Image, error) {
	if target.Digest() != "" {
		return Image{}, errdefs.Invalidf("tag %s: cannot tag with a digest", target.Familiar())
	}
	if target.Tag() == "" {
		target = target.WithTag(reference.DefaultTag)
	}
	var out Image
	err := s.update(ctx, func(db *dbFile) error {
		img, err := find(db, src)
		if err != nil {
			return err
		}
		moveTag(db, target.String(), img)
		out = *img
		return nil
	})
	return out, err
}

// DeleteOptions are the options of Delete.
type DeleteOptions struct {
	// Force removes an image by ID even when several names point at it.
	Force bool
	// InUse reports whether a container uses the image; nil means none do.
	InUse func(id digest.Digest) bool
}

// DeleteResult says what Delete did, in Docker's "Untagged"/"Deleted" terms.
type DeleteResult struct {
	Untagged []string
	Deleted  []digest.Digest
}

// Delete removes a name, or the image when arg is an ID or its last name, as
// `docker rmi` does. Content is left for GC.
func (s *Store) Delete(ctx context.Context, arg string, opts DeleteOptions) (DeleteResult, error) {
	var res DeleteResult
	err := s.update(ctx, func(db *dbFile) error {
		img, err := find(db, arg)
		if err != nil {
			return err
		}
		if ref, byName := nameArg(db, img, arg); byName {
			if ref.Digest() != "" {
				rd := ref.Name() + "@" + ref.Digest().String()
				img.RepoDigests = slices.DeleteFunc(img.RepoDigests, func(t string) bool { return t == rd })
				res.Untagged = append(res.Untagged, ref.Familiar())
			} else {
				img.RepoTags = slices.DeleteFunc(img.RepoTags, func(t string) bool { return t == ref.String() })
				res.Untagged = append(res.Untagged, ref.Familiar())
				// As Docker does: with the repository's last tag go its
				// digest references.
				if !slices.ContainsFunc(img.RepoTags, func(t string) bool { return sameRepo(t, ref) }) {
					img.RepoDigests = slices.DeleteFunc(img.RepoDigests, func(d string) bool {
						if sameRepo(d, ref) {
							res.Untagged = append(res.Untagged, familiarTag(d))
							return true
						}
						return false
					})
				}
			}
			if len(img.RepoTags) > 0 || len(img.RepoDigests) > 0 {
				return nil // still named: only the name goes
			}
		} else if repos := repositories(img); len(repos) > 1 && !opts.Force {
			return errdefs.Conflict(fmt.Errorf("unable to delete %s (must be forced) - image is referenced in multiple repositories", img.ID.Encoded()[:12]))
		}
		if opts.InUse != nil && opts.InUse(img.ID) && !opts.Force {
			return errdefs.Conflict(fmt.Errorf("unable to remove image %s: image is being used by a container", img.ID.Encoded()[:12]))
		}
		for _, t := range img.RepoTags {
			res.Untagged = append(res.Untagged, familiarTag(t))
		}
		for _, d := range img.RepoDigests {
			res.Untagged = append(res.Untagged, familiarTag(d))
		}
		delete(db.Images, img.ID.String())
		res.Deleted = append(res.Deleted, img.ID)
		return nil
	})
	return res, err
}

// nameArg reports whether arg names img by reference rather than by ID.
func nameArg(db *dbFile, img *Image, arg string) (reference.Reference, bool) {
	if _, isID := db.Images[arg]; isID || strings.HasPrefix(arg, "sha256:") {
		return reference.Reference{}, false
	}
	ref, err := reference.Parse(arg)
	if err != nil {
		return reference.Reference{}, false
	}
	if ref.Digest() != "" {
		return ref, slices.Contains(img.RepoDigests, ref.Name()+"@"+ref.Digest().String())
	}
	return ref, slices.Contains(img.RepoTags, ref.String())
}

func sameRepo(name string, ref reference.Reference) bool {
	r, err := reference.ParseRepository(name)
	return err == nil && r.Name() == ref.Name()
}

// repositories lists the distinct repositories that name img.
func repositories(img *Image) []string {
	var out []string
	for _, n := range append(slices.Clone(img.RepoTags), img.RepoDigests...) {
		r, err := reference.ParseRepository(n)
		if err == nil && !slices.Contains(out, r.Name()) {
			out = append(out, r.Name())
		}
	}
	return out
}

func familiarTag(full string) string {
	r, err := reference.ParseRepository(full)
	if err != nil {
		return full
	}
	return r.Familiar()
}

// RemoveIf deletes, in one update, every record for which remove is true,
// and returns them (prune: the choice and the deletion see the same state,
// so a concurrent tag or pull is never lost).
func (s *Store) RemoveIf(ctx context.Context, remove func(Image) bool) ([]Image, error) {
	var out []Image
	err := s.update(ctx, func(db *dbFile) error {
		for id, img := range db.Images {
			if remove(*img) {
				out = append(out, *img)
				delete(db.Images, id)
			}
		}
		return nil
	})
	return out, err
}

// AddLocation records that the image id exists as repoDigest in a registry
// repository (after a push), if the image still exists.
func (s *Store) AddLocation(ctx context.Context, id digest.Digest, repoDigest, source string) error {
	return s.update(ctx, func(db *dbFile) error {
		img, ok := db.Images[id.String()]
		if !ok {
			return nil // removed while it was pushed
		}
		moveDigest(db, repoDigest, img)
		if !slices.Contains(img.Sources, source) {
			img.Sources = append(img.Sources, source)
		}
		return nil
	})
}
