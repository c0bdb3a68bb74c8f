package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/errdefs"
)

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	fs, err := NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	return New(fs), root
}

func putBlob(t *testing.T, s *Store, repo string, b []byte) ocispec.Descriptor {
	t.Helper()
	d := digest.FromBytes(b)
	if err := s.PutBlob(context.Background(), repo, d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(b))}
}

func image(t *testing.T, s *Store, repo, tag string, layers ...string) (digest.Digest, []byte) {
	t.Helper()
	cfg := putBlob(t, s, repo, []byte(`{"architecture":"amd64","os":"linux","layers":"`+strings.Join(layers, ",")+`"}`))
	cfg.MediaType = ocispec.MediaTypeImageConfig
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg}
	m.SchemaVersion = 2
	for _, l := range layers {
		m.Layers = append(m.Layers, putBlob(t, s, repo, []byte(l)))
	}
	body, _ := json.Marshal(m)
	ref := tag
	if ref == "" {
		ref = digest.FromBytes(body).String()
	}
	d, _, err := s.PutManifest(context.Background(), repo, ref, ocispec.MediaTypeImageManifest, body)
	if err != nil {
		t.Fatal(err)
	}
	return d, body
}

// Chunks go in order; a chunk out of order, a digest that does not match
// or a body cut short leave nothing visible and the upload resumable.
func TestUploads(t *testing.T) {
	ctx := context.Background()
	s, root := newStore(t)
	data := bytes.Repeat([]byte("0123456789"), 1000)
	d := digest.FromBytes(data)
	id, err := s.StartUpload(ctx, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.AppendUpload(ctx, "a/b", id, 0, bytes.NewReader(data[:4000])); err != nil || n != 4000 {
		t.Fatalf("first chunk: %d, %v", n, err)
	}
	if _, err := s.AppendUpload(ctx, "a/b", id, 3000, bytes.NewReader(data[3000:5000])); !errors.Is(err, ErrRangeInvalid) {
		t.Fatalf("overlapping chunk: %v, want ErrRangeInvalid", err)
	}
	// A body that fails half way is cut back off.
	if _, err := s.AppendUpload(ctx, "a/b", id, 4000, &failing{data: data[4000:6000]}); err == nil {
		t.Fatal("a failing body was accepted")
	}
	if n, _ := s.UploadStatus(ctx, "a/b", id); n != 4000 {
		t.Fatalf("status after a failed chunk: %d, want 4000", n)
	}
	bad := digest.FromString("other")
	if err := s.FinishUpload(ctx, "a/b", id, 4000, bytes.NewReader(data[4000:]), bad); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("finish with a wrong digest: %v", err)
	}
	if _, err := s.BlobInfo(ctx, "a/b", bad); !errdefs.IsNotFound(err) {
		t.Fatalf("a mismatched blob is visible: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, blobKey(d))); err == nil {
		t.Fatal("the blob is visible before a matching finish")
	}
	// The session survives a wrong digest (the client may retry): the
	// bytes are all there.
	if err := s.FinishUpload(ctx, "a/b", id, -1, bytes.NewReader(nil), d); err != nil {
		t.Fatalf("finish: %v", err)
	}
	info, err := s.BlobInfo(ctx, "a/b", d)
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("blob: %+v, %v", info, err)
	}
	if _, err := s.UploadStatus(ctx, "a/b", id); !errdefs.IsNotFound(err) {
		t.Fatalf("upload still there after finish: %v", err)
	}
	// sha512 content is verified with sha512.
	d512 := digest.SHA512.FromBytes(data)
	if err := s.PutBlob(ctx, "a/b", d512, bytes.NewReader(data)); err != nil {
		t.Fatalf("sha512 blob: %v", err)
	}
	// Another repository does not see a's blobs until it mounts them.
	if _, err := s.BlobInfo(ctx, "c", d); !errdefs.IsNotFound(err) {
		t.Fatalf("blob visible in another repository: %v", err)
	}
	if ok, err := s.Mount(ctx, "c", "a/b", d); !ok || err != nil {
		t.Fatalf("mount: %v %v", ok, err)
	}
	if ok, _ := s.Mount(ctx, "c", "nope", digest.FromString("x")); ok {
		t.Fatal("mounted a blob the source lacks")
	}
}

type failing struct{ data []byte }

func (f *failing) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, errors.New("connection reset")
	}
	n := copy(p, f.data[:len(f.data)/2+1])
	f.data = f.data[n:]
	return n, nil
}

// A kill -9 mid-upload leaves a partial upload file; the store shows no
// blob, the session resumes or is purged, and a retried push succeeds.
func TestCrashMidUpload(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	data := []byte("layer bytes that were being uploaded")
	d := digest.FromBytes(data)
	id, _ := s.StartUpload(ctx, "r")
	s.AppendUpload(ctx, "r", id, 0, bytes.NewReader(data[:10]))
	// "Restart": a new Store on the same files, no memory of the session.
	s2 := New(s.Driver())
	if _, err := s2.BlobInfo(ctx, "r", d); !errdefs.IsNotFound(err) {
		t.Fatalf("a partial upload is visible as a blob: %v", err)
	}
	if n, err := s2.UploadStatus(ctx, "r", id); err != nil || n != 10 {
		t.Fatalf("status after restart: %d, %v", n, err)
	}
	if err := s2.FinishUpload(ctx, "r", id, 10, bytes.NewReader(data[10:]), d); err != nil {
		t.Fatalf("resumed upload: %v", err)
	}
	id2, _ := s2.StartUpload(ctx, "r")
	if n, err := s2.PurgeUploads(ctx, 0); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if _, err := s2.UploadStatus(ctx, "r", id2); !errdefs.IsNotFound(err) {
		t.Fatal("purged upload still there")
	}
}

func TestManifests(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	d, body := image(t, s, "app", "v1", "layer-a", "layer-b")
	got, err := s.GetManifest(ctx, "app", "v1")
	if err != nil || got.Digest != d || !bytes.Equal(got.Body, body) || got.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("GetManifest(v1) = %+v, %v", got, err)
	}
	// A manifest naming a blob the repository lacks is refused.
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("absent"), Size: 6}}
	m.SchemaVersion = 2
	b, _ := json.Marshal(m)
	if _, _, err := s.PutManifest(ctx, "app", "v2", "", b); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("manifest with a missing config: %v", err)
	}
	for _, tc := range []struct{ body, ct, want string }{
		{`{`, "", "not valid JSON"},
		{`{"schemaVersion":1}`, "", "schemaVersion"},
		{`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`, ocispec.MediaTypeImageManifest, "does not match"},
		{`{"schemaVersion":2,"mediaType":"text/plain"}`, "", "unsupported"},
		{`{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:bad","size":1}}`, "", "config"},
	} {
		if _, _, err := s.PutManifest(ctx, "app", "bad", tc.ct, []byte(tc.body)); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("PutManifest(%s) = %v, want invalid with %q", tc.body, err, tc.want)
		}
	}
	// By digest: it must be the body's.
	if _, _, err := s.PutManifest(ctx, "app", digest.FromString("x").String(), "", body); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("put under another digest: %v", err)
	}
	// Immutable tags.
	s.ImmutableTags = func(string) bool { return true }
	d2, body2 := image(t, s, "app", "", "layer-c")
	if _, _, err := s.PutManifest(ctx, "app", "v1", "", body2); !errors.Is(err, ErrTagImmutable) {
		t.Fatalf("moving an immutable tag: %v", err)
	}
	if _, _, err := s.PutManifest(ctx, "app", "v1", "", body); err != nil {
		t.Fatalf("re-pushing the same content under an immutable tag: %v", err)
	}
	s.ImmutableTags = nil
	if _, _, err := s.PutManifest(ctx, "app", "v3", "", body2); err != nil {
		t.Fatal(err)
	}
	// Delete by tag removes the tag; by digest the manifest and its tags.
	if err := s.DeleteManifest(ctx, "app", "v3"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetManifest(ctx, "app", d2.String()); err != nil {
		t.Fatalf("deleting a tag deleted its manifest: %v", err)
	}
	if err := s.DeleteManifest(ctx, "app", d.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetManifest(ctx, "app", "v1"); !errdefs.IsNotFound(err) {
		t.Fatalf("a deleted manifest's tag still resolves: %v", err)
	}
	tags, _ := s.Tags(ctx, "app")
	if len(tags) != 0 {
		t.Fatalf("tags after deletes: %v", tags)
	}
	if _, err := s.Tags(ctx, "nothing/here"); !errdefs.IsNotFound(err) {
		t.Fatalf("tags of a missing repository: %v", err)
	}
}

// index writes an index of the given manifests; subject, if set, makes it
// a referrer.
func putIndex(t *testing.T, s *Store, repo, tag string, children []digest.Digest, subject *digest.Digest) digest.Digest {
	t.Helper()
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for _, c := range children {
		got, err := s.GetManifest(context.Background(), repo, c.String())
		if err != nil {
			t.Fatal(err)
		}
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: got.MediaType, Digest: c, Size: int64(len(got.Body))})
	}
	if subject != nil {
		idx.Subject = &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: *subject, Size: 1}
		idx.ArtifactType = "application/vnd.example.sig"
	}
	body, _ := json.Marshal(idx)
	ref := tag
	if ref == "" {
		ref = digest.FromBytes(body).String()
	}
	d, _, err := s.PutManifest(context.Background(), repo, ref, ocispec.MediaTypeImageIndex, body)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Collection keeps what a tag needs, directly or through an index, and
// the referrers of kept manifests; it removes the rest once past the
// grace, and never what a push in progress just wrote.
func TestCollect(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	amd, _ := image(t, s, "multi", "", "amd64-layer")
	arm, _ := image(t, s, "multi", "", "arm64-layer")
	index := putIndex(t, s, "multi", "latest", []digest.Digest{amd, arm}, nil)
	sig := putIndex(t, s, "multi", "", nil, &index) // a referrer of the index, untagged
	orphan, _ := image(t, s, "multi", "", "orphan-layer")
	old, _ := image(t, s, "other", "v1", "old-layer")
	s.DeleteManifest(ctx, "other", old.String())
	lone := putBlob(t, s, "other", []byte("uploaded, never referenced"))

	// Everything is young: a collection with the default grace removes
	// nothing.
	res, err := s.Collect(ctx, GCOptions{Grace: time.Hour, DeleteUntagged: true})
	if err != nil || len(res.Blobs)+len(res.Manifests) != 0 {
		t.Fatalf("young content collected: %+v, %v", res, err)
	}
	dry, err := s.Collect(ctx, GCOptions{Grace: -time.Second, DeleteUntagged: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err = s.Collect(ctx, GCOptions{Grace: -time.Second, DeleteUntagged: true})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(dry.Blobs) != fmt.Sprint(res.Blobs) || fmt.Sprint(dry.Manifests) != fmt.Sprint(res.Manifests) {
		t.Errorf("dry run %+v differs from the run %+v", dry, res)
	}
	if want := []string{"multi@" + orphan.String()}; fmt.Sprint(res.Manifests) != fmt.Sprint(want) {
		t.Errorf("manifests collected %v, want %v", res.Manifests, want)
	}
	for _, keep := range []digest.Digest{amd, arm, index, sig} {
		if _, err := s.GetManifest(ctx, "multi", keep.String()); err != nil {
			t.Errorf("kept manifest %s: %v", keep, err)
		}
	}
	refs, _ := s.Referrers(ctx, "multi", index, "")
	if len(refs) != 1 || refs[0].Digest != sig {
		t.Errorf("referrers after collection: %v", refs)
	}
	gone := map[digest.Digest]bool{}
	for _, b := range res.Blobs {
		gone[b] = true
	}
	for _, want := range []digest.Digest{orphan, digest.FromBytes([]byte("orphan-layer")), old, digest.FromBytes([]byte("old-layer")), lone.Digest} {
		if !gone[want] {
			t.Errorf("blob %s not collected (collected %v)", want, res.Blobs)
		}
	}
	if _, err := s.OpenBlob(ctx, "multi", digest.FromBytes([]byte("amd64-layer"))); err != nil {
		t.Errorf("a layer of a kept image was collected: %v", err)
	}
}

// A stream of pushes while collections run: every image still tagged at
// the end is whole. The grace is short (but long against a stall of the
// test between a push's blobs and its manifest, which the grace exists
// to cover: a loaded CI machine stalls for tens of milliseconds), and
// pushes reuse layers of images
// deleted a moment before, so collections keep finding those layers
// unreferenced and old just as a push references them again: only the
// touch-and-move protocol keeps them.
func TestCollectDuringPushes(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var collections, collected int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := s.Collect(ctx, GCOptions{Grace: time.Second, DeleteUntagged: true})
			if err != nil {
				t.Error(err)
				return
			}
			collections++
			collected += len(res.Blobs)
		}
	}()
	kept := map[string]bool{}
	deadline := time.Now().Add(4 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		tag := fmt.Sprintf("v%d", i)
		image(t, s, "busy", tag, fmt.Sprintf("pool-%d", i%5), fmt.Sprintf("own-%d", i))
		kept[tag] = true
		if i%2 == 1 {
			// Untag the one before: its layers become garbage.
			prev := fmt.Sprintf("v%d", i-1)
			if err := s.DeleteManifest(ctx, "busy", prev); err != nil {
				t.Fatal(err)
			}
			delete(kept, prev)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if collections < 3 || collected == 0 {
		t.Fatalf("%d collections removed %d blobs: the test did not exercise collection", collections, collected)
	}
	for tag := range kept {
		m, err := s.GetManifest(ctx, "busy", tag)
		if err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
		var man ocispec.Manifest
		json.Unmarshal(m.Body, &man)
		for _, l := range append(man.Layers, man.Config) {
			if _, err := s.OpenBlob(ctx, "busy", l.Digest); err != nil {
				t.Errorf("%s: blob %s lost: %v", tag, l.Digest, err)
			}
		}
	}
	t.Logf("%d collections removed %d blobs during %d pushes", collections, collected, len(kept))
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}`), "")
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"a","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":1}],"subject":{"mediaType":"x","digest":"sha512:00","size":1}}`), "application/vnd.oci.image.index.v1+json")
	f.Add([]byte(`{"schemaVersion":2}`), "application/vnd.docker.distribution.manifest.v2+json")
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		m, err := ParseManifest(body, ct)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if !isManifestType(m.MediaType) {
			t.Fatalf("accepted media type %q", m.MediaType)
		}
		blobs, manifests := m.references()
		for _, d := range append(blobs, manifests...) {
			if d.Validate() != nil {
				t.Fatalf("accepted an invalid reference %q", d)
			}
		}
	})
}

// Retention: the newest N tags stay; untagged manifests go once older than
// the policy's age, unless a tag keeps them through an index.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	s, root := newStore(t)
	for i := range 4 {
		image(t, s, "keep", fmt.Sprintf("v%d", i), fmt.Sprintf("layer-%d", i))
		// Tag times order the tags: make them distinct and old enough.
		p := filepath.Join(root, tagKey("keep", fmt.Sprintf("v%d", i)))
		at := time.Now().Add(-time.Duration(10-i) * time.Hour)
		os.Chtimes(p, at, at)
	}
	old, _ := image(t, s, "keep", "", "untagged-old")
	at := time.Now().Add(-48 * time.Hour)
	os.Chtimes(filepath.Join(root, revisionKey("keep", old)), at, at)
	young, _ := image(t, s, "keep", "", "untagged-young")
	res, err := s.Collect(ctx, GCOptions{Grace: time.Minute, Retention: func(repo string) (int, time.Duration) { return 2, 24 * time.Hour }})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Tags) != "[keep:v1 keep:v0]" {
		t.Errorf("tags removed %v, want the two oldest", res.Tags)
	}
	tags, _ := s.Tags(ctx, "keep")
	if fmt.Sprint(tags) != "[v2 v3]" {
		t.Errorf("tags left %v", tags)
	}
	if _, err := s.GetManifest(ctx, "keep", old.String()); !errdefs.IsNotFound(err) {
		t.Errorf("an old untagged manifest survived: %v", err)
	}
	if _, err := s.GetManifest(ctx, "keep", young.String()); err != nil {
		t.Errorf("a young untagged manifest was removed: %v", err)
	}
}

// A blob over the size limit is refused and nothing of it stays visible.
func TestMaxUpload(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	s.MaxUpload = 1000
	big := bytes.Repeat([]byte("x"), 1001)
	if err := s.PutBlob(ctx, "r", digest.FromBytes(big), bytes.NewReader(big)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a blob over the limit: %v", err)
	}
	if _, err := s.BlobInfo(ctx, "r", digest.FromBytes(big)); !errdefs.IsNotFound(err) {
		t.Fatalf("the refused blob is visible: %v", err)
	}
	ok := bytes.Repeat([]byte("x"), 1000)
	if err := s.PutBlob(ctx, "r", digest.FromBytes(ok), bytes.NewReader(ok)); err != nil {
		t.Fatalf("a blob at the limit: %v", err)
	}
}

// A collection a crash cut short leaves a blob's gc-pending copy: the next
// collection neither trusts it nor loses the live blob.
func TestCollectAfterCrashedSweep(t *testing.T) {
	ctx := context.Background()
	s, root := newStore(t)
	d, _ := image(t, s, "r", "v1", "kept layer")
	layer := digest.FromBytes([]byte("kept layer"))
	stale := filepath.Join(root, strings.TrimSuffix(blobKey(layer), "/data"), "gc-pending")
	os.WriteFile(stale, []byte("kept layer"), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(stale, old, old)
	if _, err := s.Collect(ctx, GCOptions{Grace: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenBlob(ctx, "r", layer); err != nil {
		t.Fatalf("a referenced blob was lost after a crashed sweep: %v", err)
	}
	// Unreferenced now, and old: this time it goes, stale copy and all.
	s.DeleteManifest(ctx, "r", d.String())
	p := filepath.Join(root, blobKey(layer))
	os.Chtimes(p, old, old)
	os.Chtimes(filepath.Join(root, layerLinkKey("r", layer)), old, old)
	os.WriteFile(stale, []byte("kept layer"), 0o644)
	res, err := s.Collect(ctx, GCOptions{Grace: time.Minute, DeleteUntagged: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(p)); !os.IsNotExist(err) || len(res.Blobs) == 0 {
		t.Errorf("an unreferenced old blob stayed: %v %+v", err, res)
	}
}

// A collection in another process (berth registry gc) holds a blob moved
// aside while it decides: a push that references the blob just then moves
// it back instead of failing, and the sweep, finding it back, keeps it.
func TestPushRestoresBlobMovedAside(t *testing.T) {
	ctx := context.Background()
	s, root := newStore(t)
	layer := putBlob(t, s, "r", []byte("shared layer"))
	p := filepath.Join(root, blobKey(layer.Digest))
	aside := filepath.Join(root, pendingKey(layer.Digest))
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	if err := os.Rename(p, aside); err != nil {
		t.Fatal(err)
	}
	// The push: its config, then a manifest naming the layer held aside.
	if _, _, err := s.PutManifest(ctx, "r", "v1", ocispec.MediaTypeImageManifest, manifestOf(t, s, "r", layer)); err != nil {
		t.Fatalf("a push referencing a blob a collection held aside: %v", err)
	}
	info, err := os.Stat(p)
	if err != nil {
		t.Fatalf("the blob was not moved back: %v", err)
	}
	if !info.ModTime().After(old) {
		t.Errorf("the blob moved back was not touched: %v", info.ModTime())
	}
	// The other process's sweep goes on: the copy aside is gone, so it
	// deletes nothing and reports the blob kept.
	gone, err := s.dropAside(ctx, layer.Digest)
	if err != nil || gone {
		t.Fatalf("the sweep after the push: gone=%v, %v", gone, err)
	}
	if _, err := s.OpenBlob(ctx, "r", layer.Digest); err != nil {
		t.Fatalf("the blob a push restored was lost: %v", err)
	}
}

// manifestOf writes a config blob and returns a manifest of it and layers.
func manifestOf(t *testing.T, s *Store, repo string, layers ...ocispec.Descriptor) []byte {
	t.Helper()
	cfg := putBlob(t, s, repo, []byte(`{"architecture":"amd64","os":"linux"}`))
	cfg.MediaType = ocispec.MediaTypeImageConfig
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: layers}
	m.SchemaVersion = 2
	body, _ := json.Marshal(m)
	return body
}

// A published blob maps whole, read-only, with its exact bytes; an empty
// one does not map (the server then uses ServeContent).
func TestMapBlob(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	data := bytes.Repeat([]byte("mapped "), 100000)
	desc := putBlob(t, s, "r", data)
	obj, err := s.OpenBlob(ctx, "r", desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	m, ok := obj.(interface {
		Map() ([]byte, func() error, error)
	})
	if !ok {
		t.Fatalf("the FS driver's object %T does not map", obj)
	}
	b, unmap, err := m.Map()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, data) {
		t.Errorf("mapped %d bytes, not the blob's %d", len(b), len(data))
	}
	if err := unmap(); err != nil {
		t.Error(err)
	}
	empty := putBlob(t, s, "r", nil)
	eobj, err := s.OpenBlob(ctx, "r", empty.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer eobj.Close()
	if _, _, err := eobj.(interface {
		Map() ([]byte, func() error, error)
	}).Map(); err == nil {
		t.Error("an empty blob mapped")
	}
}
