package archive

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Tar writes src (a file or a directory tree) as a tar stream to w, its
// entries named under prefix ("." for the contents alone), as docker cp
// and export name them. Symlinks are stored, not followed; hard links
// within the tree stay links; owners are numeric.
func Tar(ctx context.Context, w io.Writer, src, prefix string) error {
	return WriteTree(ctx, w, src, TreeOptions{Prefix: prefix})
}

// TreeOptions shape the tar stream WriteTree writes.
type TreeOptions struct {
	// Prefix names the entries ("" or "." for the tree's contents alone).
	Prefix string
	// Overlay reads src as an overlayfs upper directory: whiteouts (0/0
	// character devices) become ".wh." entries and opaque directories get
	// a ".wh..wh..opq" entry, as the OCI image spec's layers have them.
	Overlay bool
	// Clamp, if set, caps every modification time (SOURCE_DATE_EPOCH), so
	// the same content gives the same bytes.
	Clamp time.Time
	// Skip leaves out an entry by its path relative to src ("a/b"); a
	// skipped directory keeps its contents unless they are skipped too.
	Skip func(rel string, dir bool) bool
	// UID and GID, if not nil, own every entry (COPY --chown).
	UID, GID *int
	// Mode, if not nil, replaces every entry's permission bits (COPY --chmod).
	Mode *os.FileMode
	// NoRoot leaves src's own entry out: its contents alone (COPY of a
	// directory, whose own mode and owner do not reach the destination).
	NoRoot bool
}

// WriteTree writes src as a tar stream in lexical order: the same tree
// gives the same bytes (access and change times are never written).
func WriteTree(ctx context.Context, w io.Writer, src string, o TreeOptions) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	prefix := o.Prefix
	if prefix == "" {
		prefix = "."
	}
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel, _ := filepath.Rel(src, p)
		if o.Skip != nil && rel != "." && o.Skip(filepath.ToSlash(rel), fi.IsDir()) {
			return nil
		}
		if o.NoRoot && rel == "." {
			return nil
		}
		name := filepath.ToSlash(filepath.Join(prefix, rel))
		if prefix == "." && rel == "." {
			if o.Overlay {
				return nil // the root of a layer is not an entry
			}
			name = "./"
		}
		if o.Overlay && fi.Mode()&os.ModeCharDevice != 0 {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Rdev == 0 {
				return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path.Join(path.Dir(name), ".wh."+path.Base(name)), Mode: 0o600, ModTime: clamp(fi.ModTime(), o.Clamp).Truncate(time.Second)})
			}
		}
		var link string
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = name
		if fi.IsDir() && !strings.HasSuffix(hdr.Name, "/") {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		hdr.ModTime = clamp(hdr.ModTime, o.Clamp)
		if o.UID != nil {
			hdr.Uid = *o.UID
		}
		if o.GID != nil {
			hdr.Gid = *o.GID
		}
		if o.Mode != nil && fi.Mode()&os.ModeSymlink == 0 {
			hdr.Mode = hdr.Mode&^0o7777 | int64(*o.Mode&0o7777)
		}
		if fi.Mode().IsRegular() {
			// File capabilities (ping's cap_net_raw) are part of what a
			// file is; as Docker, the one xattr a layer keeps.
			if v, ok := capability(p); ok {
				hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": v}
			}
		}
		if key, nlink := inodeKey(fi); fi.Mode().IsRegular() && nlink > 1 {
			if first, ok := links[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				links[key] = hdr.Name
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if o.Overlay && fi.IsDir() && opaque(p) {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: hdr.Name + ".wh..wh..opq", Mode: 0o600, ModTime: hdr.ModTime.Truncate(time.Second)}); err != nil {
				return err
			}
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("archiving %s: %w", prefix, err)
	}
	return tw.Close()
}

func clamp(t, max time.Time) time.Time {
	if !max.IsZero() && t.After(max) {
		return max
	}
	return t
}

// opaque reports an overlayfs opaque directory (its lower contents are
// hidden): the trusted.overlay.opaque (or, unprivileged, user.overlay.
// opaque) extended attribute is "y".
func opaque(dir string) bool {
	buf := make([]byte, 4)
	for _, attr := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		if n, err := unix.Lgetxattr(dir, attr, buf); err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	return false
}

// capability reads a file's security.capability xattr.
func capability(p string) (string, bool) {
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(p, "security.capability", buf)
	if err != nil || n <= 0 {
		return "", false
	}
	return string(buf[:n]), true
}

func inodeKey(fi os.FileInfo) ([2]uint64, uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return [2]uint64{st.Dev, st.Ino}, uint64(st.Nlink)
	}
	return [2]uint64{}, 1
}

// CopyEntries copies tr's entries to tw until the end of tr. edit, if set,
// may change each header first, or leave the entry out (false).
func CopyEntries(tw *tar.Writer, tr *tar.Reader, edit func(*tar.Header) (bool, error)) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if edit != nil {
			keep, err := edit(hdr)
			if err != nil {
				return err
			}
			if !keep {
				continue
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}
