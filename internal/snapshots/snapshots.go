// Package snapshots holds unpacked image layers as overlayfs lower
// directories, one per layer, keyed by the layer's diffID (the digest of
// its uncompressed tar). Because every layer directory holds only that
// layer's changes (whiteouts already in overlayfs form), layers are
// independent: they unpack in parallel, and a layer shared by many images is
// stored once.
//
// A layer is unpacked into a temporary directory and renamed into place only
// after its diffID has been verified and its filesystem synced, so a visible
// layer is always complete. The package returns mount descriptions; it never
// mounts anything itself.
//
// Layout:
//
//	ROOT/layers/<alg>/<hex>/   committed layer directories (read-only by convention)
//	ROOT/tmp/<random>/         layers being unpacked or removed; gc removes leftovers
package snapshots

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/atomicfile"
	"github.com/berth-dev/berth/internal/errdefs"
)

// Store is a directory of unpacked layers.
type Store struct {
	root string
}

// New opens (creating if needed) a layer store rooted at dir.
func New(dir string) (*Store, error) {
	for _, d := range []string{filepath.Join(dir, "layers"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating snapshot store: %w", err)
		}
	}
	return &Store{root: dir}, nil
}

// Path is where the layer with the given diffID lives once committed.
func (s *Store) Path(diffID digest.Digest) string {
	return filepath.Join(s.root, "layers", diffID.Algorithm().String(), diffID.Encoded())
}

// Has reports whether the layer is committed.
func (s *Store) Has(diffID digest.Digest) bool {
	if diffID.Validate() != nil {
		return false
	}
	_, err := os.Stat(s.Path(diffID))
	return err == nil
}

// Ingest is a layer being unpacked.
type Ingest struct {
	s   *Store
	Dir string // unpack into this directory
	// Size is the layer's uncompressed tar size, recorded at Commit for
	// image sizes (as Docker reports them) without walking the tree.
	Size int64
}

// Prepare makes a temporary directory to unpack a layer into.
func (s *Store) Prepare(ctx context.Context) (*Ingest, error) {
	dir, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "layer-")
	if err != nil {
		return nil, fmt.Errorf("preparing layer directory: %w", err)
	}
	// Layer roots are 0755 like an image's /, whatever the umask says; the
	// tar's own "./" entry may change it.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Ingest{s: s, Dir: dir}, nil
}

// Commit syncs the unpacked layer and makes it visible under diffID. If the
// layer is already committed (another pull won the race), the temporary
// directory is removed and Commit succeeds.
func (i *Ingest) Commit(ctx context.Context, diffID digest.Digest) error {
	b := i.s.NewBatch()
	b.Add(i, diffID)
	return b.Commit(ctx)
}

// publish renames the (already synced) layer into place.
func (i *Ingest) publish(diffID digest.Digest) error {
	target := i.s.Path(diffID)
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		i.Abort()
		return err
	}
	if err := os.MkdirAll(filepath.Join(i.s.root, "sizes"), 0o700); err != nil {
		i.Abort()
		return err
	}
	if err := atomicfile.WriteFile(i.s.sizePath(diffID), []byte(strconv.FormatInt(i.Size, 10)), 0o600); err != nil {
		i.Abort()
		return err
	}
	if err := os.Rename(i.Dir, target); err != nil {
		i.Abort()
		if errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
			return nil
		}
		return fmt.Errorf("committing layer %s: %w", diffID, err)
	}
	return atomicfile.SyncDir(filepath.Dir(target))
}

// Batch commits several unpacked layers with one syncfs. syncfs flushes the
// whole filesystem, so one call for all the layers of a pull costs what one
// layer's would, where a call per layer would flush every other layer's
// dirty data again and again. Layers are renamed into place only after the
// sync, so a visible layer is always durable.
type Batch struct {
	s *Store
	// mu guards pending and flushing.
	mu       sync.Mutex
	pending  []pending
	flushing bool           // an early syncfs is running
	flushed  sync.WaitGroup // early syncfs calls
}

type pending struct {
	in     *Ingest
	diffID digest.Digest
}

// NewBatch starts an empty batch.
func (s *Store) NewBatch() *Batch { return &Batch{s: s} }

// Add queues a verified, unpacked layer for Commit. Safe for concurrent use.
func (b *Batch) Add(in *Ingest, diffID digest.Digest) {
	b.mu.Lock()
	b.pending = append(b.pending, pending{in, diffID})
	start := !b.flushing
	b.flushing = true
	b.mu.Unlock()
	if start {
		// Start writing back what is unpacked so far while the other
		// layers still unpack: the kernel would otherwise hold it all in
		// memory (dirty limits are a share of RAM) and Commit's syncfs
		// would write everything at the end, with the CPUs idle.
		b.flushed.Add(1)
		go func() {
			defer b.flushed.Done()
			syncfs(in.Dir)
			b.mu.Lock()
			b.flushing = false
			b.mu.Unlock()
		}()
	}
}

// Commit syncs the filesystem once and publishes every queued layer.
func (b *Batch) Commit(ctx context.Context) error {
	b.mu.Lock()
	ps := b.pending
	b.pending = nil
	b.mu.Unlock()
	if len(ps) == 0 {
		return nil
	}
	for _, p := range ps {
		if err := p.diffID.Validate(); err != nil {
			abortAll(ps)
			return errdefs.Invalidf("layer diffID %q: %v", p.diffID, err)
		}
	}
	b.flushed.Wait()
	if err := syncfs(ps[0].in.Dir); err != nil {
		abortAll(ps)
		return fmt.Errorf("syncing layers: %w", err)
	}
	var first error
	for i, p := range ps {
		if err := ctx.Err(); err != nil {
			abortAll(ps[i:])
			return err
		}
		if err := p.in.publish(p.diffID); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Abort removes every queued layer.
func (b *Batch) Abort() {
	b.mu.Lock()
	ps := b.pending
	b.pending = nil
	b.mu.Unlock()
	abortAll(ps)
}

func abortAll(ps []pending) {
	for _, p := range ps {
		p.in.Abort()
	}
}

// Abort removes the temporary directory.
func (i *Ingest) Abort() error { return removeAll(i.Dir) }

// Remove deletes a committed layer. Removing a missing layer is not an error.
func (s *Store) Remove(ctx context.Context, diffID digest.Digest) error {
	if err := diffID.Validate(); err != nil {
		return errdefs.Invalidf("layer diffID %q: %v", diffID, err)
	}
	// Rename first so a crash mid-delete never leaves a half-deleted layer
	// visible under its diffID.
	p := s.Path(diffID)
	// A unique place: a GC killed mid-removal may have left an rm- tree of
	// the same layer (Cleanup removes it later).
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "rm-"+diffID.Encoded()[:12]+"-")
	if err != nil {
		return fmt.Errorf("removing layer %s: %w", diffID, err)
	}
	if err := os.Rename(p, filepath.Join(tmp, "layer")); err != nil {
		os.Remove(tmp)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("removing layer %s: %w", diffID, err)
	}
	if err := removeAll(tmp); err != nil {
		return err
	}
	if err := os.Remove(s.sizePath(diffID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (s *Store) sizePath(diffID digest.Digest) string {
	return filepath.Join(s.root, "sizes", diffID.Algorithm().String()+"-"+diffID.Encoded())
}

// Size is the uncompressed tar size recorded when the layer was committed.
func (s *Store) Size(diffID digest.Digest) (int64, error) {
	b, err := os.ReadFile(s.sizePath(diffID))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, errdefs.NotFoundf("layer %s: no size recorded", diffID)
		}
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// List returns the diffIDs of all committed layers.
func (s *Store) List(ctx context.Context) ([]digest.Digest, error) {
	var out []digest.Digest
	algs, err := os.ReadDir(filepath.Join(s.root, "layers"))
	if err != nil {
		return nil, err
	}
	for _, a := range algs {
		ents, err := os.ReadDir(filepath.Join(s.root, "layers", a.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			d := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), e.Name())
			if d.Validate() == nil {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// Usage is the disk space a committed layer uses, in bytes.
func (s *Store) Usage(ctx context.Context, diffID digest.Digest) (int64, error) {
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(s.Path(diffID), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*unix.Stat_t)
		if ok && st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		if ok {
			total += st.Blocks * 512
		} else {
			total += fi.Size()
		}
		return nil
	})
	return total, err
}

// Cleanup removes temporary directories left by a crash. Call it only when
// no unpack is running (at start-up, under the store lock).
func (s *Store) Cleanup(ctx context.Context) error {
	ents, err := os.ReadDir(filepath.Join(s.root, "tmp"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := removeAll(filepath.Join(s.root, "tmp", e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// Mount is a mount description for the runtime: what mount(2) would take.
type Mount struct {
	Type    string
	Source  string
	Options []string
}

// Lowers lists the layers' directories as overlayfs's lowerdir takes
// them, top first. A layer that occurs twice (two RUN steps that changed
// nothing both make the empty layer) is listed once, at its topmost
// place: overlayfs refuses a directory twice (ELOOP), and the upper
// occurrence already re-applies every file and whiteout the lower one
// holds, so the merged tree is the same.
func (s *Store) Lowers(diffIDs []digest.Digest) ([]string, error) {
	lowers := make([]string, 0, len(diffIDs))
	seen := make(map[digest.Digest]bool, len(diffIDs))
	for i := len(diffIDs) - 1; i >= 0; i-- {
		d := diffIDs[i]
		if seen[d] {
			continue
		}
		seen[d] = true
		if !s.Has(d) {
			return nil, errdefs.NotFoundf("layer %s is not unpacked", d)
		}
		lowers = append(lowers, s.Path(d))
	}
	return lowers, nil
}

// Mounts describes the read-only overlay of the given layers, bottom first.
// A single layer is a read-only bind mount (overlayfs needs two lowers).
// The runtime adds upperdir and workdir for a writable container.
func (s *Store) Mounts(diffIDs []digest.Digest) ([]Mount, error) {
	if len(diffIDs) == 0 {
		return nil, errdefs.Invalidf("no layers to mount")
	}
	lowers, err := s.Lowers(diffIDs)
	if err != nil {
		return nil, err
	}
	if len(lowers) == 1 {
		return []Mount{{Type: "bind", Source: lowers[0], Options: []string{"ro", "rbind"}}}, nil
	}
	return []Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + strings.Join(lowers, ":")}}}, nil
}

func syncfs(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// removeAll removes a tree that may contain read-only directories (layers
// keep the modes their tars gave them, and root can delete regardless, but
// tests run unprivileged too).
func removeAll(p string) error {
	err := os.RemoveAll(p)
	if err == nil || os.Geteuid() == 0 {
		return err
	}
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(q, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}
