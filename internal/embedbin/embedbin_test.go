package embedbin

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Install names a program by its content, reuses a right copy, replaces a
// damaged one, and installs nothing for an empty program.
func TestInstall(t *testing.T) {
	dir := t.TempDir()
	if p, err := Install(dir, "helper", nil); p != "" || err != nil {
		t.Fatalf("Install of nothing = %q, %v", p, err)
	}
	prog := []byte("#!/bin/sh\necho one\n")
	p, err := Install(filepath.Join(dir, "bin"), "helper", prog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(p), "helper-") {
		t.Errorf("installed as %s", p)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed file: %v, %v", fi, err)
	}
	// A damaged copy (a crash, a hand edit) is replaced.
	os.WriteFile(p, []byte("garbage"), 0o755)
	if p2, err := Install(filepath.Join(dir, "bin"), "helper", prog); err != nil || p2 != p {
		t.Fatalf("reinstall = %q, %v", p2, err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, prog) {
		t.Errorf("a damaged copy was kept: %q", b)
	}
	// Another version goes beside it: running shims keep their file.
	p3, err := Install(filepath.Join(dir, "bin"), "helper", []byte("#!/bin/sh\necho two\n"))
	if err != nil || p3 == p {
		t.Fatalf("a second version = %q, %v", p3, err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("the first version was removed: %v", err)
	}
}
