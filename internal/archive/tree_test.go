package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// WriteTree reading an overlayfs upper directory: whiteouts (also at
// paths too long for the USTAR format), opaque directories and file
// capabilities become the OCI layer's entries; NoRoot leaves the root out.
func TestWriteTreeOverlay(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("whiteouts are character devices; making one needs root")
	}
	dir := t.TempDir()
	long := strings.Repeat("d", 120) + "/" + strings.Repeat("e", 120)
	os.MkdirAll(filepath.Join(dir, long), 0o755)
	if err := unix.Mknod(filepath.Join(dir, long, strings.Repeat("gone", 10)), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "opq"), 0o755)
	if err := unix.Setxattr(filepath.Join(dir, "opq"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ping"), []byte("elf"), 0o755)
	if err := unix.Setxattr(filepath.Join(dir, "ping"), "security.capability", []byte(capV2()), 0); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "plain"), []byte("x"), 0o644)
	unix.Setxattr(filepath.Join(dir, "plain"), "user.other", []byte("1"), 0)

	var buf bytes.Buffer
	if err := WriteTree(context.Background(), &buf, dir, TreeOptions{Overlay: true, Clamp: time.Unix(100, 0)}); err != nil {
		t.Fatal(err)
	}
	got := map[string]*tar.Header{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
	}
	wh := long + "/.wh." + strings.Repeat("gone", 10)
	if h := got[wh]; h == nil || h.Typeflag != tar.TypeReg || h.Size != 0 {
		t.Errorf("no whiteout entry %s: %v", wh, keysOf(got))
	}
	if got["opq/.wh..wh..opq"] == nil {
		t.Errorf("no opaque marker: %v", keysOf(got))
	}
	if h := got["ping"]; h == nil || h.PAXRecords["SCHILY.xattr.security.capability"] != capV2() {
		t.Errorf("ping lost its capability: %+v", h)
	}
	if h := got["plain"]; h == nil || len(h.PAXRecords) != 0 {
		t.Errorf("plain: an xattr other than the capability was kept: %+v", h)
	}
	for name, h := range got {
		if h.ModTime.After(time.Unix(100, 0)) {
			t.Errorf("%s: time %v not clamped", name, h.ModTime)
		}
	}

	buf.Reset()
	if err := WriteTree(context.Background(), &buf, dir, TreeOptions{Prefix: "x", NoRoot: true}); err != nil {
		t.Fatal(err)
	}
	tr = tar.NewReader(&buf)
	if h, err := tr.Next(); err != nil || h.Name == "x/" || h.Name == "x" {
		t.Errorf("NoRoot: first entry %v, %v", h, err)
	}
}

func keysOf(m map[string]*tar.Header) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
