package snapshots

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/errdefs"
)

func TestBatchCommit(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	var ids []digest.Digest
	for _, name := range []string{"a", "b"} {
		in, err := s.Prepare(ctx)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(in.Dir, name), []byte(name), 0o644)
		in.Size = 1024
		id := digest.FromString(name)
		ids = append(ids, id)
		b.Add(in, id)
		if s.Has(id) {
			t.Fatalf("layer %s visible before Commit", name)
		}
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if !s.Has(id) {
			t.Fatalf("layer %d not visible after Commit", i)
		}
		if n, err := s.Size(id); err != nil || n != 1024 {
			t.Fatalf("Size = %d, %v; want 1024", n, err)
		}
	}
	m, err := s.Mounts(ids)
	if err != nil || len(m) != 1 || m[0].Type != "overlay" {
		t.Fatalf("Mounts = %+v, %v", m, err)
	}
	// Top layer first in lowerdir.
	want := "lowerdir=" + s.Path(ids[1]) + ":" + s.Path(ids[0])
	if m[0].Options[0] != want {
		t.Fatalf("Mounts options = %q, want %q", m[0].Options[0], want)
	}
	// A layer twice (two empty RUN layers) is listed once, at its top
	// place: overlayfs refuses a directory twice.
	m, err = s.Mounts([]digest.Digest{ids[0], ids[1], ids[0]})
	if want := "lowerdir=" + s.Path(ids[0]) + ":" + s.Path(ids[1]); err != nil || m[0].Options[0] != want {
		t.Fatalf("Mounts(a, b, a) = %+v, %v; want %q", m, err, want)
	}
	if m, _ := s.Mounts(ids[:1]); m[0].Type != "bind" {
		t.Fatalf("single-layer Mounts = %+v, want a bind mount", m)
	}
	if _, err := s.Mounts([]digest.Digest{digest.FromString("missing")}); !errdefs.IsNotFound(err) {
		t.Fatalf("Mounts(missing) = %v, want NotFound", err)
	}
	// A second commit of the same layer (another pull won) succeeds and
	// leaves no temporary directory.
	in, _ := s.Prepare(ctx)
	if err := in.Commit(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.root, "tmp")); len(ents) != 0 {
		t.Fatalf("tmp has %d entries after a lost race", len(ents))
	}
	if err := s.Remove(ctx, ids[0]); err != nil || s.Has(ids[0]) {
		t.Fatalf("Remove: %v, still there: %v", err, s.Has(ids[0]))
	}
	if _, err := s.Size(ids[0]); !errdefs.IsNotFound(err) {
		t.Fatalf("Size after Remove = %v, want NotFound", err)
	}
	list, _ := s.List(ctx)
	if len(list) != 1 || list[0] != ids[1] {
		t.Fatalf("List = %v, want [%s]", list, ids[1])
	}
}

func TestBatchAbortAndCleanup(t *testing.T) {
	ctx := context.Background()
	s, _ := New(t.TempDir())
	b := s.NewBatch()
	in, _ := s.Prepare(ctx)
	b.Add(in, digest.FromString("x"))
	b.Abort()
	if _, err := os.Stat(in.Dir); !os.IsNotExist(err) {
		t.Fatalf("aborted layer dir still exists: %v", err)
	}
	// A crash leaves tmp dirs: Cleanup removes them.
	left, _ := s.Prepare(ctx)
	if err := s.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left.Dir); !os.IsNotExist(err) {
		t.Fatal("Cleanup left a temporary layer")
	}
	// Invalid diffID: refused, nothing published.
	in, _ = s.Prepare(ctx)
	if err := in.Commit(ctx, "sha256:nothex"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Commit(bad diffID) = %v, want InvalidArgument", err)
	}
	if !strings.HasPrefix(filepath.Base(in.Dir), "layer-") {
		t.Fatalf("unexpected tmp name %s", in.Dir)
	}
}

// TestRemoveAfterInterruptedRemove: a GC killed mid-removal leaves an rm-
// tree in tmp; removing the same layer again (re-pulled since) still works.
func TestRemoveAfterInterruptedRemove(t *testing.T) {
	ctx := context.Background()
	s, _ := New(t.TempDir())
	id := digest.FromString("again")
	for round := 0; round < 2; round++ {
		in, _ := s.Prepare(ctx)
		os.WriteFile(filepath.Join(in.Dir, "f"), []byte("x"), 0o644)
		if err := in.Commit(ctx, id); err != nil {
			t.Fatal(err)
		}
		// What an interrupted Remove of the previous round left.
		os.MkdirAll(filepath.Join(s.root, "tmp", "rm-"+id.Encoded()[:12]+"-1", "layer", "f"), 0o755)
		if err := s.Remove(ctx, id); err != nil {
			t.Fatalf("round %d: Remove: %v", round, err)
		}
		if s.Has(id) {
			t.Fatalf("round %d: layer still there", round)
		}
	}
	if err := s.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.root, "tmp")); len(ents) != 0 {
		t.Fatalf("tmp after Cleanup: %v", ents)
	}
}
