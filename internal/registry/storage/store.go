package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Errors callers branch on, beside errdefs' classes.
var (
	// ErrRangeInvalid is a chunk whose start is not the upload's end.
	ErrRangeInvalid = errors.New("chunk out of order")
	// ErrDigestMismatch is an upload or manifest whose content is not the
	// digest it was sent with.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrBlobUnknown is a manifest naming a blob (or an index a manifest)
	// the repository lacks.
	ErrBlobUnknown = errors.New("blob unknown to the repository")
	// ErrTagImmutable is a push over an existing tag where tags are
	// immutable.
	ErrTagImmutable = errors.New("tag is immutable")
	// ErrQuota is a push over a repository's storage quota.
	ErrQuota = errors.New("storage quota exceeded")
	// ErrTooLarge is an upload over the size limit.
	ErrTooLarge = errors.New("upload too large")
)

// Store is a registry's content on a Driver.
type Store struct {
	d Driver
	// MaxUpload bounds one blob's size (0: no limit).
	MaxUpload int64
	// ImmutableTags refuses a push that would move an existing tag.
	ImmutableTags func(repo string) bool
	// Quota is a repository's storage limit in bytes (0: none) and the
	// scope sharing it: the repository, or a namespace ("team/") whose
	// repositories count together.
	Quota func(repo string) (limit int64, scope string)

	// mu guards uploads.
	mu sync.Mutex
	// uploads are the sessions this process is serving: a lock each, so
	// chunks of one upload go in one at a time, and the running SHA-256
	// of what was appended (when it covers the whole upload, finishing
	// needs no second read).
	uploads map[string]*upload
	// tagMu serialises tag and manifest writes per repository, so an
	// immutable tag cannot be set twice by racing pushes.
	tagMu sync.Map // repo -> *sync.Mutex
	// blobMu serialises, per blob (striped by digest), what a push does
	// to a blob and its links with what a collection in this process
	// does to them: a touch never lands while the sweep holds the blob
	// moved aside, and a link is never rewritten between the collection
	// judging it old and deleting it.
	blobMu [64]sync.Mutex
	// bufs are the buffers uploads are copied through: large (1 MiB), so
	// a 100 MiB blob is a hundred writes and hash updates, not thousands
	// (2.4x the throughput of io.Copy's 32 KiB here).
	bufs sync.Pool
}

type upload struct {
	mu     sync.Mutex
	h      hash.Hash
	hashed int64
}

// New makes a Store on d.
func New(d Driver) *Store {
	s := &Store{d: d, uploads: map[string]*upload{}}
	s.bufs.New = func() any { b := make([]byte, 1<<20); return &b }
	return s
}

// Driver is the store's driver.
func (s *Store) Driver() Driver { return s.d }

// --- blobs

// BlobInfo describes a blob the repository holds. A pusher asks this
// before deciding a blob need not be sent, so an old link and blob are
// touched: a collection running meanwhile spares them.
func (s *Store) BlobInfo(ctx context.Context, repo string, d digest.Digest) (Info, error) {
	link, err := s.d.Stat(ctx, layerLinkKey(repo, d))
	if err != nil {
		return Info{}, err
	}
	info, err := s.d.Stat(ctx, blobKey(d))
	if err != nil {
		return Info{}, err
	}
	if old := time.Now().Add(-touchAfter); link.ModTime.Before(old) || info.ModTime.Before(old) {
		mu := s.blobLock(d)
		mu.Lock()
		_ = s.d.Touch(ctx, layerLinkKey(repo, d))
		_ = s.touchBlobLocked(ctx, d)
		mu.Unlock()
	}
	return info, nil
}

// touchAfter is how old a link may be before a HEAD refreshes it; well
// under any sensible collection grace.
const touchAfter = 5 * time.Minute

// OpenBlob opens a blob the repository holds.
func (s *Store) OpenBlob(ctx context.Context, repo string, d digest.Digest) (Object, error) {
	if _, err := s.d.Stat(ctx, layerLinkKey(repo, d)); err != nil {
		return nil, err
	}
	return s.d.Open(ctx, blobKey(d))
}

// DeleteBlob removes the blob from the repository (its bytes go with
// garbage collection, once nothing else holds them).
func (s *Store) DeleteBlob(ctx context.Context, repo string, d digest.Digest) error {
	if _, err := s.d.Stat(ctx, layerLinkKey(repo, d)); err != nil {
		return err
	}
	return s.d.Delete(ctx, strings.TrimSuffix(layerLinkKey(repo, d), "/link"))
}

// Mount links a blob another repository holds into repo (cross-repository
// mount). ok is false when from does not hold it.
func (s *Store) Mount(ctx context.Context, repo, from string, d digest.Digest) (bool, error) {
	if _, err := s.d.Stat(ctx, layerLinkKey(from, d)); err != nil {
		if errdefs.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	info, err := s.d.Stat(ctx, blobKey(d))
	if err != nil {
		if errdefs.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	if err := s.checkQuota(ctx, repo, info.Size); err != nil {
		return false, err
	}
	if err := s.link(ctx, repo, d); err != nil {
		return false, err
	}
	return true, nil
}

// link records that repo holds blob d, and touches the blob so a
// collection already marking spares it.
func (s *Store) link(ctx context.Context, repo string, d digest.Digest) error {
	mu := s.blobLock(d)
	mu.Lock()
	defer mu.Unlock()
	return s.linkLocked(ctx, repo, d)
}

func (s *Store) linkLocked(ctx context.Context, repo string, d digest.Digest) error {
	if err := s.touchBlobLocked(ctx, d); err != nil {
		return err
	}
	return s.d.PutContent(ctx, layerLinkKey(repo, d), []byte(d.String()))
}

// blobLock is the lock of blob d's stripe.
func (s *Store) blobLock(d digest.Digest) *sync.Mutex {
	e := d.Encoded()
	if len(e) < 2 {
		return &s.blobMu[0]
	}
	return &s.blobMu[(int(e[0])<<8|int(e[1]))%len(s.blobMu)]
}

// touchBlob marks blob d as in use now, so a collection spares it.
func (s *Store) touchBlob(ctx context.Context, d digest.Digest) error {
	mu := s.blobLock(d)
	mu.Lock()
	defer mu.Unlock()
	return s.touchBlobLocked(ctx, d)
}

// touchBlobLocked touches blob d. A collection in another process
// (berth registry gc) may hold the blob moved aside at this moment: it is
// moved back and touched, and that sweep, seeing it back, keeps it.
func (s *Store) touchBlobLocked(ctx context.Context, d digest.Digest) error {
	err := s.d.Touch(ctx, blobKey(d))
	if !errdefs.IsNotFound(err) {
		return err
	}
	if perr := s.d.Publish(ctx, pendingKey(d), blobKey(d)); perr != nil {
		return err
	}
	return s.d.Touch(ctx, blobKey(d))
}

// --- uploads

// StartUpload opens an upload session.
func (s *Store) StartUpload(ctx context.Context, repo string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b[:])
	// Not synced: a session a crash loses is only an upload to redo
	// (the client restarts it), and PurgeUploads judges a session without
	// a readable start time by its directory's age.
	sa, err := s.d.Append(ctx, uploadKey(repo, id)+"/startedat")
	if err != nil {
		return "", fmt.Errorf("starting an upload: %w", err)
	}
	_, err = sa.Write([]byte(time.Now().UTC().Format(time.RFC3339Nano)))
	if cerr := sa.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("starting an upload: %w", err)
	}
	a, err := s.d.Append(ctx, uploadKey(repo, id)+"/data")
	if err != nil {
		return "", fmt.Errorf("starting an upload: %w", err)
	}
	return id, a.Close()
}

// ValidUploadID checks an upload ID's form (it names a directory).
func ValidUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func (s *Store) session(repo, id string) *upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := repo + "/" + id
	u := s.uploads[key]
	if u == nil {
		u = &upload{h: sha256.New()}
		s.uploads[key] = u
	}
	return u
}

func (s *Store) forget(repo, id string) {
	s.mu.Lock()
	delete(s.uploads, repo+"/"+id)
	s.mu.Unlock()
}

// UploadStatus is how many bytes an upload holds.
func (s *Store) UploadStatus(ctx context.Context, repo, id string) (int64, error) {
	if !ValidUploadID(id) {
		return 0, errdefs.NotFoundf("upload %s: not found", id)
	}
	info, err := s.d.Stat(ctx, uploadKey(repo, id)+"/data")
	if err != nil {
		return 0, err
	}
	return info.Size, nil
}

// AppendUpload adds a chunk to an upload. start is where the client says
// the chunk begins (-1: not said, a streamed PATCH). It returns the
// upload's new size. A chunk that fails part way is cut off again.
func (s *Store) AppendUpload(ctx context.Context, repo, id string, start int64, r io.Reader) (int64, error) {
	if !ValidUploadID(id) {
		return 0, errdefs.NotFoundf("upload %s: not found", id)
	}
	u := s.session(repo, id)
	u.mu.Lock()
	defer u.mu.Unlock()
	return s.appendLocked(ctx, u, repo, id, start, r)
}

func (s *Store) appendLocked(ctx context.Context, u *upload, repo, id string, start int64, r io.Reader) (int64, error) {
	if _, err := s.d.Stat(ctx, uploadKey(repo, id)+"/startedat"); err != nil {
		return 0, err
	}
	a, err := s.d.Append(ctx, uploadKey(repo, id)+"/data")
	if err != nil {
		return 0, err
	}
	defer a.Close()
	before := a.Size()
	if start >= 0 && start != before {
		return before, fmt.Errorf("chunk starts at %d, the upload holds %d bytes: %w", start, before, ErrRangeInvalid)
	}
	var w io.Writer = a
	if u.hashed == before {
		w = io.MultiWriter(a, u.h)
	} else {
		u.hashed = -1 // the running hash no longer covers it: verify by reading
	}
	var src io.Reader = r
	if s.MaxUpload > 0 {
		src = io.LimitReader(r, s.MaxUpload-before+1)
	}
	buf := s.bufs.Get().(*[]byte)
	n, err := io.CopyBuffer(w, src, *buf)
	s.bufs.Put(buf)
	if err == nil && s.MaxUpload > 0 && before+n > s.MaxUpload {
		err = fmt.Errorf("blob over the %d-byte limit: %w", s.MaxUpload, ErrTooLarge)
	}
	if err != nil {
		// The client resumes from the status it asks for: keep the
		// upload at its size before this chunk.
		if terr := a.Truncate(before); terr != nil {
			return before, errors.Join(err, terr)
		}
		if u.hashed >= 0 {
			u.h, u.hashed = sha256.New(), -1
		}
		return before, err
	}
	if u.hashed >= 0 {
		u.hashed = before + n
	}
	return before + n, nil
}

// FinishUpload appends the last chunk (r may be empty), checks the whole
// upload against d, publishes the blob and links it into repo. Nothing is
// visible unless the digest matched.
func (s *Store) FinishUpload(ctx context.Context, repo, id string, start int64, r io.Reader, d digest.Digest) error {
	if !ValidUploadID(id) {
		return errdefs.NotFoundf("upload %s: not found", id)
	}
	u := s.session(repo, id)
	u.mu.Lock()
	defer u.mu.Unlock()
	size, err := s.appendLocked(ctx, u, repo, id, start, r)
	if err != nil {
		return err
	}
	key := uploadKey(repo, id) + "/data"
	got, err := s.uploadDigest(ctx, u, key, size, d.Algorithm())
	if err != nil {
		return err
	}
	if got != d {
		return fmt.Errorf("upload is %s, not %s: %w", got, d, ErrDigestMismatch)
	}
	if err := s.checkQuota(ctx, repo, size); err != nil {
		return err
	}
	a, err := s.d.Append(ctx, key)
	if err != nil {
		return err
	}
	err = a.Sync()
	a.Close()
	if err != nil {
		return err
	}
	mu := s.blobLock(d)
	mu.Lock()
	err = s.d.Publish(ctx, key, blobKey(d))
	if err != nil {
		err = fmt.Errorf("publishing %s: %w", d, err)
	} else {
		// A copy already there was kept and is touched here, under the
		// same lock, so a sweep cannot take it between the two.
		err = s.linkLocked(ctx, repo, d)
	}
	mu.Unlock()
	if err != nil {
		return err
	}
	s.forget(repo, id)
	return s.d.Delete(ctx, uploadKey(repo, id))
}

func (s *Store) uploadDigest(ctx context.Context, u *upload, key string, size int64, alg digest.Algorithm) (digest.Digest, error) {
	if alg == digest.SHA256 && u.hashed == size {
		return digest.NewDigest(alg, u.h), nil
	}
	a, err := s.d.Append(ctx, key)
	if err != nil {
		return "", err
	}
	defer a.Close()
	rc, err := a.Reader()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	return alg.FromReader(rc)
}

// CancelUpload ends an upload session, discarding its bytes.
func (s *Store) CancelUpload(ctx context.Context, repo, id string) error {
	if !ValidUploadID(id) {
		return errdefs.NotFoundf("upload %s: not found", id)
	}
	if _, err := s.d.Stat(ctx, uploadKey(repo, id)+"/startedat"); err != nil {
		return err
	}
	s.forget(repo, id)
	return s.d.Delete(ctx, uploadKey(repo, id))
}

// PutBlob stores a blob in one request (POST with ?digest=).
func (s *Store) PutBlob(ctx context.Context, repo string, d digest.Digest, r io.Reader) error {
	id, err := s.StartUpload(ctx, repo)
	if err != nil {
		return err
	}
	if err := s.FinishUpload(ctx, repo, id, 0, r, d); err != nil {
		_ = s.CancelUpload(context.WithoutCancel(ctx), repo, id)
		return err
	}
	return nil
}

// PurgeUploads removes upload sessions started more than ttl ago, in every
// repository; it returns how many.
func (s *Store) PurgeUploads(ctx context.Context, ttl time.Duration) (int, error) {
	repos, err := s.Repositories(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, repo := range repos {
		ids, err := s.d.List(ctx, uploadsKey(repo))
		if err != nil {
			continue
		}
		for _, id := range ids {
			b, err := s.d.GetContent(ctx, uploadKey(repo, id)+"/startedat")
			var started time.Time
			if err == nil {
				started, err = time.Parse(time.RFC3339Nano, string(b))
			}
			if err != nil {
				// A session a crash left without its start time: judge
				// it by its directory's age.
				info, serr := s.d.Stat(ctx, uploadKey(repo, id))
				if serr != nil {
					continue
				}
				started = info.ModTime
			}
			if time.Since(started) < ttl {
				continue
			}
			s.forget(repo, id)
			if err := s.d.Delete(ctx, uploadKey(repo, id)); err == nil {
				n++
			}
		}
	}
	return n, nil
}

// --- manifests

// Stored is a manifest as the registry keeps it.
type Stored struct {
	Digest    digest.Digest
	MediaType string
	Body      []byte
}

// PutManifest checks and stores a manifest under ref (a tag or the body's
// digest). It returns the manifest's digest and its parsed form.
func (s *Store) PutManifest(ctx context.Context, repo, ref, contentType string, body []byte) (digest.Digest, *Manifest, error) {
	m, err := ParseManifest(body, contentType)
	if err != nil {
		return "", nil, errdefs.InvalidArgument(err)
	}
	d := digest.FromBytes(body)
	tag := ""
	if strings.Contains(ref, ":") {
		want, err := ParseDigest(ref)
		if err != nil {
			return "", nil, err
		}
		d = want.Algorithm().FromBytes(body)
		if d != want {
			return "", nil, fmt.Errorf("manifest body is %s, not %s: %w", d, want, ErrDigestMismatch)
		}
	} else {
		if err := ValidTag(ref); err != nil {
			return "", nil, err
		}
		tag = ref
	}
	blobs, manifests := m.references()
	for _, b := range blobs {
		if _, err := s.d.Stat(ctx, layerLinkKey(repo, b)); err != nil {
			if errdefs.IsNotFound(err) {
				return "", nil, fmt.Errorf("%s: %w", b, ErrBlobUnknown)
			}
			return "", nil, err
		}
		// Referenced now: a collection marking right now spares it.
		if err := s.touchBlob(ctx, b); err != nil {
			if errdefs.IsNotFound(err) {
				return "", nil, fmt.Errorf("%s: %w", b, ErrBlobUnknown)
			}
			return "", nil, err
		}
	}
	for _, c := range manifests {
		if _, err := s.d.Stat(ctx, revisionKey(repo, c)); err != nil {
			if errdefs.IsNotFound(err) {
				return "", nil, fmt.Errorf("manifest %s: %w", c, ErrBlobUnknown)
			}
			return "", nil, err
		}
		if err := s.touchBlob(ctx, c); err != nil {
			return "", nil, fmt.Errorf("manifest %s: %w", c, ErrBlobUnknown)
		}
	}
	mu := s.repoLock(repo)
	mu.Lock()
	defer mu.Unlock()
	if tag != "" && s.ImmutableTags != nil && s.ImmutableTags(repo) {
		if cur, err := s.d.GetContent(ctx, tagKey(repo, tag)); err == nil && string(cur) != d.String() {
			return "", nil, fmt.Errorf("%s:%s already names %s: %w", repo, tag, cur, ErrTagImmutable)
		}
	}
	if _, err := s.d.Stat(ctx, revisionKey(repo, d)); err != nil {
		if err := s.checkQuota(ctx, repo, int64(len(body))); err != nil {
			return "", nil, err
		}
	}
	// The body first (content-addressed, so a crash leaves at worst an
	// unreferenced blob), then the revision, then the tag.
	if _, err := s.d.Stat(ctx, blobKey(d)); err != nil {
		if err := s.d.PutContent(ctx, blobKey(d), body); err != nil {
			return "", nil, err
		}
	} else if err := s.touchBlob(ctx, d); err != nil {
		return "", nil, err
	}
	if err := s.d.PutContent(ctx, revisionKey(repo, d), []byte(d.String()+"\n"+m.MediaType)); err != nil {
		return "", nil, err
	}
	if m.Subject != nil {
		desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: d, Size: int64(len(body)), ArtifactType: m.EffectiveArtifactType(), Annotations: m.Annotations}
		b, _ := json.Marshal(desc)
		if err := s.d.PutContent(ctx, referrersKey(repo, m.Subject.Digest)+"/"+d.Algorithm().String()+"-"+d.Encoded(), b); err != nil {
			return "", nil, err
		}
	}
	if tag != "" {
		if err := s.d.PutContent(ctx, tagKey(repo, tag), []byte(d.String())); err != nil {
			return "", nil, err
		}
	}
	return d, m, nil
}

// Tag points tag at manifest d of repo (a push by digest with ?tag=).
func (s *Store) Tag(ctx context.Context, repo, tag string, d digest.Digest) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	if _, err := s.d.Stat(ctx, revisionKey(repo, d)); err != nil {
		return err
	}
	mu := s.repoLock(repo)
	mu.Lock()
	defer mu.Unlock()
	if s.ImmutableTags != nil && s.ImmutableTags(repo) {
		if cur, err := s.d.GetContent(ctx, tagKey(repo, tag)); err == nil && string(cur) != d.String() {
			return fmt.Errorf("%s:%s already names %s: %w", repo, tag, cur, ErrTagImmutable)
		}
	}
	return s.d.PutContent(ctx, tagKey(repo, tag), []byte(d.String()))
}

// Holders lists the repositories that hold blob d (a mount without
// "from" looks for one). It walks every repository: such mounts are rare.
func (s *Store) Holders(ctx context.Context, d digest.Digest) []string {
	if _, err := s.d.Stat(ctx, blobKey(d)); err != nil {
		return nil
	}
	repos, err := s.Repositories(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range repos {
		if _, err := s.d.Stat(ctx, layerLinkKey(r, d)); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// PutCached stores a manifest a pull-through cache fetched: its blobs are
// fetched when pulled, so none is required now. ref is the tag or digest
// it was fetched by.
func (s *Store) PutCached(ctx context.Context, repo, ref, contentType string, body []byte) error {
	m, err := ParseManifest(body, contentType)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("upstream manifest: %w", err))
	}
	d := digest.FromBytes(body)
	if strings.Contains(ref, ":") {
		want, err := ParseDigest(ref)
		if err != nil {
			return err
		}
		if d = want.Algorithm().FromBytes(body); d != want {
			return fmt.Errorf("upstream manifest is %s, not %s: %w", d, want, ErrDigestMismatch)
		}
	}
	mu := s.repoLock(repo)
	mu.Lock()
	defer mu.Unlock()
	if err := s.d.PutContent(ctx, blobKey(d), body); err != nil {
		return err
	}
	if err := s.d.PutContent(ctx, revisionKey(repo, d), []byte(d.String()+"\n"+m.MediaType)); err != nil {
		return err
	}
	if !strings.Contains(ref, ":") {
		return s.d.PutContent(ctx, tagKey(repo, ref), []byte(d.String()))
	}
	return nil
}

// TagAge is how long ago a tag was last set (a cache's freshness).
func (s *Store) TagAge(ctx context.Context, repo, tag string) (time.Duration, error) {
	if err := ValidTag(tag); err != nil {
		return 0, err
	}
	info, err := s.d.Stat(ctx, tagKey(repo, tag))
	if err != nil {
		return 0, err
	}
	return time.Since(info.ModTime), nil
}

func (s *Store) repoLock(repo string) *sync.Mutex {
	v, _ := s.tagMu.LoadOrStore(repo, &sync.Mutex{})
	return v.(*sync.Mutex)
}

// Resolve finds the digest a reference (tag or digest) names in repo.
func (s *Store) Resolve(ctx context.Context, repo, ref string) (digest.Digest, error) {
	if strings.Contains(ref, ":") {
		d, err := ParseDigest(ref)
		if err != nil {
			return "", err
		}
		if _, err := s.d.Stat(ctx, revisionKey(repo, d)); err != nil {
			return "", err
		}
		return d, nil
	}
	if err := ValidTag(ref); err != nil {
		return "", err
	}
	b, err := s.d.GetContent(ctx, tagKey(repo, ref))
	if err != nil {
		return "", err
	}
	return ParseDigest(strings.TrimSpace(string(b)))
}

// GetManifest reads a manifest by tag or digest.
func (s *Store) GetManifest(ctx context.Context, repo, ref string) (Stored, error) {
	d, err := s.Resolve(ctx, repo, ref)
	if err != nil {
		return Stored{}, err
	}
	link, err := s.d.GetContent(ctx, revisionKey(repo, d))
	if err != nil {
		return Stored{}, err
	}
	_, mt, _ := strings.Cut(string(link), "\n")
	body, err := s.d.GetContent(ctx, blobKey(d))
	if err != nil {
		return Stored{}, fmt.Errorf("manifest %s: its content is missing: %w", d, err)
	}
	if got := d.Algorithm().FromBytes(body); got != d {
		return Stored{}, errdefs.DataLoss(fmt.Errorf("manifest %s: stored content is %s", d, got))
	}
	return Stored{Digest: d, MediaType: mt, Body: body}, nil
}

// DeleteManifest removes a tag (ref a tag) or a manifest and every tag
// naming it (ref a digest).
func (s *Store) DeleteManifest(ctx context.Context, repo, ref string) error {
	mu := s.repoLock(repo)
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(ref, ":") {
		if err := ValidTag(ref); err != nil {
			return err
		}
		if _, err := s.d.Stat(ctx, tagKey(repo, ref)); err != nil {
			return err
		}
		return s.d.Delete(ctx, tagsKey(repo)+"/"+ref)
	}
	d, err := s.Resolve(ctx, repo, ref)
	if err != nil {
		return err
	}
	return s.deleteRevisionLocked(ctx, repo, d)
}

// deleteRevisionLocked removes a manifest revision, the tags naming it and
// its entry in its subject's referrers.
func (s *Store) deleteRevisionLocked(ctx context.Context, repo string, d digest.Digest) error {
	tags, _ := s.d.List(ctx, tagsKey(repo))
	for _, t := range tags {
		if b, err := s.d.GetContent(ctx, tagKey(repo, t)); err == nil && string(b) == d.String() {
			if err := s.d.Delete(ctx, tagsKey(repo)+"/"+t); err != nil {
				return err
			}
		}
	}
	if body, err := s.d.GetContent(ctx, blobKey(d)); err == nil {
		if m, err := ParseManifest(body, ""); err == nil && m.Subject != nil {
			if err := s.d.Delete(ctx, referrersKey(repo, m.Subject.Digest)+"/"+d.Algorithm().String()+"-"+d.Encoded()); err != nil {
				return err
			}
		}
	}
	return s.d.Delete(ctx, strings.TrimSuffix(revisionKey(repo, d), "/link"))
}

// Tags lists a repository's tags, sorted.
func (s *Store) Tags(ctx context.Context, repo string) ([]string, error) {
	if !s.Exists(ctx, repo) {
		return nil, errdefs.NotFoundf("repository %s: not found", repo)
	}
	tags, err := s.d.List(ctx, tagsKey(repo))
	if errdefs.IsNotFound(err) {
		return []string{}, nil
	}
	return tags, err
}

// Exists reports whether a repository holds anything.
func (s *Store) Exists(ctx context.Context, repo string) bool {
	kids, err := s.d.List(ctx, repoKey(repo))
	if err != nil {
		return false
	}
	return slices.ContainsFunc(kids, func(k string) bool { return strings.HasPrefix(k, "_") })
}

// Referrers lists the manifests whose subject is d, optionally only those
// of one artifact type.
func (s *Store) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	names, err := s.d.List(ctx, referrersKey(repo, d))
	if errdefs.IsNotFound(err) {
		return []ocispec.Descriptor{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := []ocispec.Descriptor{}
	for _, n := range names {
		b, err := s.d.GetContent(ctx, referrersKey(repo, d)+"/"+n)
		if err != nil {
			continue
		}
		var desc ocispec.Descriptor
		if json.Unmarshal(b, &desc) != nil {
			continue
		}
		if artifactType != "" && desc.ArtifactType != artifactType {
			continue
		}
		out = append(out, desc)
	}
	return out, nil
}

// Repositories lists every repository, sorted.
func (s *Store) Repositories(ctx context.Context) ([]string, error) {
	var out []string
	var walk func(prefix, name string) error
	walk = func(prefix, name string) error {
		kids, err := s.d.List(ctx, prefix)
		if err != nil {
			if errdefs.IsNotFound(err) {
				return nil
			}
			return err
		}
		isRepo := false
		for _, k := range kids {
			if strings.HasPrefix(k, "_") {
				isRepo = true
				continue
			}
			sub := k
			if name != "" {
				sub = name + "/" + k
			}
			if err := walk(prefix+"/"+k, sub); err != nil {
				return err
			}
		}
		if isRepo && name != "" {
			out = append(out, name)
		}
		return nil
	}
	if err := walk("repositories", ""); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

// --- quotas

// Usage is the bytes a repository holds: its blobs and manifests.
func (s *Store) Usage(ctx context.Context, repo string) (int64, error) {
	var total int64
	for _, sub := range []string{"/_layers", "/_manifests/revisions"} {
		algs, err := s.d.List(ctx, repoKey(repo)+sub)
		if err != nil {
			continue
		}
		for _, alg := range algs {
			hexes, err := s.d.List(ctx, repoKey(repo)+sub+"/"+alg)
			if err != nil {
				continue
			}
			for _, h := range hexes {
				d := digest.NewDigestFromEncoded(digest.Algorithm(alg), h)
				if info, err := s.d.Stat(ctx, blobKey(d)); err == nil {
					total += info.Size
				}
			}
		}
	}
	return total, nil
}

func (s *Store) checkQuota(ctx context.Context, repo string, adding int64) error {
	if s.Quota == nil {
		return nil
	}
	limit, scope := s.Quota(repo)
	if limit <= 0 {
		return nil
	}
	repos := []string{repo}
	if strings.HasSuffix(scope, "/") {
		all, err := s.Repositories(ctx)
		if err != nil {
			return err
		}
		repos = repos[:0]
		for _, r := range all {
			if strings.HasPrefix(r, scope) {
				repos = append(repos, r)
			}
		}
	}
	var used int64
	for _, r := range repos {
		n, err := s.Usage(ctx, r)
		if err != nil {
			return err
		}
		used += n
	}
	if used+adding > limit {
		return fmt.Errorf("%s would hold %d bytes, over its quota of %d: %w", scope, used+adding, limit, ErrQuota)
	}
	return nil
}
