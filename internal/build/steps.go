package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/images"
)

// tailWriter keeps the last bytes written through it: a failed step's
// output tail goes into its error.
type tailWriter struct {
	w   io.Writer
	buf []byte
}

const tailMax = 2048

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailMax {
		t.buf = t.buf[len(t.buf)-tailMax:]
	}
	return t.w.Write(p)
}

// runStep is RUN: the command in a container from the stage's image; its
// changes are the new layer.
func (r *run) runStep(ctx context.Context, st *stage, c *instructions.RunCommand, code string) error {
	if len(c.Files) > 0 {
		return errdefs.Invalidf("%s: heredocs are not supported by berth's builder yet", code)
	}
	if len(c.FlagsUsed) > 0 {
		return errdefs.Invalidf("%s: RUN --%s is not supported by berth's builder (BuildKit only)", code, c.FlagsUsed[0])
	}
	if st.empty() {
		return errdefs.Invalidf("%s: RUN in a scratch stage: there is no file system to run it in", code)
	}
	argv := st.commandLine(c.ShellDependantCmdLine)
	createdBy := strings.Join(argv, " ")
	if !c.PrependShell {
		createdBy = "RUN " + fmt.Sprintf("%q", argv)
	}
	return r.commit(ctx, st, st.cfg, createdBy, nil, func(ctx context.Context) (func(io.Writer) error, func(), error) {
		cfg := container.Config{Cmd: argv, Env: r.runEnv(st), User: st.cfg.User, WorkingDir: st.cfg.WorkingDir}
		bc, err := r.b.Containers.NewBuildContainer(ctx, st.img.ID.String(), cfg, r.o.Network)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", code, err)
		}
		done := func() { _ = bc.Remove(ctx) }
		fmt.Fprintf(st.out, " ---> Running in %s\n", bc.ID()[:12])
		tw := &tailWriter{w: st.out}
		exit, err := bc.Run(ctx, tw)
		if err != nil {
			done()
			return nil, nil, fmt.Errorf("%s: %w", code, err)
		}
		if exit != 0 {
			done()
			return nil, nil, &StepError{Step: code, Command: argv, ExitCode: exit}
		}
		fmt.Fprintf(st.out, " ---> Removed intermediate container %s\n", bc.ID()[:12])
		return func(w io.Writer) error { return bc.WriteDiff(ctx, w, r.epoch) }, done, nil
	})
}

// runEnv is a RUN's environment: the stage's, and Docker's proxy build
// args when given (usable without an ARG, and, as Docker, left out of the
// cache key and the image's history so a proxy change rebuilds nothing).
func (r *run) runEnv(st *stage) []string {
	env := st.env()
	keys := make([]string, 0, len(predefinedArgs))
	for k := range predefinedArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := r.o.BuildArgs[k]
		if v == nil || slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") }) {
			continue
		}
		env = append(env, k+"="+*v)
		r.usedMu.Lock()
		r.used[k] = true
		r.usedMu.Unlock()
	}
	return env
}

// workdirStep is WORKDIR: the config, and the directory made when the
// image lacks it (as Docker's builder does).
func (r *run) workdirStep(ctx context.Context, st *stage, cfg v1.Config, code string) error {
	createdBy := "/bin/sh -c #(nop) WORKDIR " + cfg.WorkingDir
	if st.empty() {
		return r.commit(ctx, st, cfg, createdBy, nil, func(context.Context) (func(io.Writer) error, func(), error) {
			return dirLayer(cfg.WorkingDir, r.epoch), func() {}, nil
		})
	}
	// A cached step needs no look at the file system.
	if r.hit(ctx, st, r.key(st, createdBy, nil)) {
		return nil
	}
	var exists bool
	if err := r.withImageRootfs(ctx, st.img.ID.String(), func(root string) error {
		p, err := securejoin.SecureJoin(root, cfg.WorkingDir)
		if err != nil {
			return err
		}
		_, err = os.Stat(p)
		exists = err == nil
		return nil
	}); err != nil {
		return fmt.Errorf("%s: %w", code, err)
	}
	if exists {
		return r.commit(ctx, st, cfg, createdBy, nil, nil)
	}
	return r.commit(ctx, st, cfg, createdBy, nil, func(context.Context) (func(io.Writer) error, func(), error) {
		return dirLayer(cfg.WorkingDir, r.epoch), func() {}, nil
	})
}

// dirLayer is a layer holding one directory and its missing parents.
func dirLayer(dir string, epoch time.Time) func(io.Writer) error {
	return func(w io.Writer) error {
		tw := tar.NewWriter(w)
		p := ""
		for _, part := range strings.Split(strings.Trim(path.Clean(dir), "/"), "/") {
			if part == "" {
				continue
			}
			p = path.Join(p, part)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return err
			}
		}
		return tw.Close()
	}
}

// withImageRootfs mounts an image's file system (through a container that
// never runs) for fn to read.
func (r *run) withImageRootfs(ctx context.Context, image string, fn func(root string) error) error {
	bc, err := r.b.Containers.NewBuildContainer(ctx, image, container.Config{Cmd: []string{"true"}}, "none")
	if err != nil {
		return err
	}
	defer bc.Remove(ctx)
	return bc.WithRootfs(ctx, fn)
}

type copySpec struct {
	sd           instructions.SourcesAndDest
	from         string
	chown, chmod string
	add          bool
	unpack       bool          // ADD: extract local tar archives
	checksum     digest.Digest // ADD --checksum of a URL
}

// source is one resolved COPY or ADD source.
type source struct {
	root string // the tree it is in (context, or another image's root)
	rel  string // its path there, symlinks resolved
	name string // the path as written: a file keeps this name at dest
	fi   os.FileInfo
	// ADD's remote file, fetched into file before the cache is asked (its
	// content is in the key, as Docker's).
	url     string
	file    string
	size    int64
	modTime time.Time
}

// copyStep is COPY and ADD: the sources (from the context, another stage
// or image, or for ADD a URL) written into a container of the stage's
// image; its changes are the layer.
func (r *run) copyStep(ctx context.Context, st *stage, code string, cs copySpec) error {
	name := "COPY"
	if cs.add {
		name = "ADD"
	}
	if len(cs.sd.SourceContents) > 0 {
		return errdefs.Invalidf("%s: heredocs are not supported by berth's builder yet", code)
	}
	var mode *os.FileMode
	if cs.chmod != "" {
		m, err := strconv.ParseUint(cs.chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return errdefs.Invalidf("%s: --chmod=%s: want an octal mode such as 755", code, cs.chmod)
		}
		fm := os.FileMode(m)
		mode = &fm
	}
	dest := cs.sd.DestPath
	if !path.IsAbs(dest) {
		wd := st.cfg.WorkingDir
		if wd == "" {
			wd = "/"
		}
		isDir := strings.HasSuffix(dest, "/") || dest == "."
		dest = path.Join(wd, dest)
		if isDir {
			dest += "/"
		}
	}
	// The sources: their tree, mounted for the whole step when it is
	// another image's.
	var fromImage string
	root := r.o.ContextDir
	if cs.from != "" {
		var from *images.Resolved
		if j := r.stageIndex(cs.from, st.index); j >= 0 {
			if prev := r.stageResult(j); prev != nil {
				from = prev.img
			}
		} else {
			img, err := r.baseImage(ctx, st.out, cs.from)
			if err != nil {
				return fmt.Errorf("%s: --from=%s: %w", code, cs.from, err)
			}
			from = img
		}
		if from == nil || len(from.Config.RootFS.DiffIDs) == 0 {
			return errdefs.Invalidf("%s: --from=%s has no files (an empty scratch image)", code, cs.from)
		}
		fromImage = from.ID.String()
	}
	body := func(root string) error {
		srcs, err := r.sources(root, cs, fromImage != "")
		if err != nil {
			return errdefs.Invalidf("%s failed: %v", name, err)
		}
		for i := range srcs {
			if srcs[i].url == "" {
				continue
			}
			if err := r.download(ctx, &srcs[i], cs.checksum); err != nil {
				return err
			}
			defer os.Remove(srcs[i].file)
		}
		dir := strings.HasSuffix(dest, "/") || len(srcs) > 1
		for _, s := range srcs {
			if s.fi != nil && s.fi.IsDir() {
				dir = true
			}
		}
		if len(srcs) > 1 && !strings.HasSuffix(dest, "/") {
			return errdefs.Invalidf("%s: when using %s with more than one source file, the destination must be a directory and end with a /", code, name)
		}
		// The key: what the sources hold, not when they were touched.
		h := sha256.New()
		// For --from, the files' content too: a rebuilt stage that
		// made the same files is a cache hit.
		fmt.Fprintf(h, "dest %s dir %v chown %s chmod %s from %v\n", dest, dir, cs.chown, cs.chmod, fromImage != "")
		for _, s := range srcs {
			if err := r.hash(ctx, h, s); err != nil {
				return err
			}
		}
		createdBy := fmt.Sprintf("/bin/sh -c #(nop) %s %s", name, strings.TrimPrefix(code, name+" "))
		return r.commit(ctx, st, st.cfg, createdBy, h.Sum(nil), func(ctx context.Context) (func(io.Writer) error, func(), error) {
			return r.copyLayer(ctx, st, srcs, dest, dir, cs, mode)
		})
	}
	if fromImage != "" {
		return r.withImageRootfs(ctx, fromImage, body)
	}
	return body(root)
}

// sources expands the step's source paths (wildcards as Docker's
// filepath.Match) in root; in the context, .dockerignore applies.
func (r *run) sources(root string, cs copySpec, fromImage bool) ([]source, error) {
	var out []source
	for _, p := range cs.sd.SourcePaths {
		if cs.add && (strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://")) {
			if _, err := url.ParseRequestURI(p); err != nil {
				return nil, fmt.Errorf("invalid URL %q: %v", p, err)
			}
			out = append(out, source{url: p, name: p})
			continue
		}
		if cs.checksum != "" {
			return nil, fmt.Errorf("source %q: --checksum is only for http and https sources", p)
		}
		if strings.Contains(p, "://") || strings.HasPrefix(p, "git@") {
			return nil, fmt.Errorf("source %q: only ADD takes URLs, and only http and https", p)
		}
		rel, err := contextPath(p)
		if err != nil {
			return nil, err
		}
		if rel == "" {
			rel = "."
		}
		var matches []string
		if strings.ContainsAny(rel, "*?[") {
			found, err := filepath.Glob(filepath.Join(root, rel))
			if err != nil {
				return nil, fmt.Errorf("source %q: %v", p, err)
			}
			for _, f := range found {
				m, _ := filepath.Rel(root, f)
				if !fromImage && r.ignored(filepath.ToSlash(m)) {
					continue
				}
				matches = append(matches, filepath.ToSlash(m))
			}
			if len(matches) == 0 {
				return nil, fmt.Errorf("no source files were specified matching %s", p)
			}
		} else {
			matches = []string{rel}
		}
		for _, m := range matches {
			name := m
			if !fromImage && r.ignored(m) {
				return nil, fmt.Errorf("file not found in build context or excluded by .dockerignore: stat %s: file does not exist", p)
			}
			// Symlinks resolve within the tree (the context, or the
			// image's root), never out of it onto the host's files.
			full, err := securejoin.SecureJoin(root, m)
			if err != nil {
				return nil, err
			}
			if m, err = filepath.Rel(root, full); err != nil {
				return nil, err
			}
			if !fromImage && r.ignored(filepath.ToSlash(m)) {
				return nil, fmt.Errorf("file not found in build context or excluded by .dockerignore: stat %s: file does not exist", p)
			}
			fi, err := os.Lstat(full)
			if err != nil {
				return nil, fmt.Errorf("file not found in build context or excluded by .dockerignore: stat %s: file does not exist", p)
			}
			out = append(out, source{root: root, rel: m, name: name, fi: fi})
		}
	}
	return out, nil
}

// skip is the .dockerignore filter of a walk under the source s.
func (r *run) skip(s source) func(rel string, dir bool) bool {
	if s.root != r.o.ContextDir {
		return nil
	}
	return func(rel string, dir bool) bool { return r.ignored(path.Join(filepath.ToSlash(s.rel), rel)) }
}

// hash writes what the source holds into h, as the step would copy it
// (.dockerignore applied), but not its times.
func (r *run) hash(ctx context.Context, h io.Writer, s source) error {
	if s.url != "" {
		f, err := os.Open(s.file)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintf(h, "url %s mtime %d size %d\n", s.url, s.modTime.Unix(), s.size)
		_, err = io.Copy(h, f)
		return err
	}
	fmt.Fprintf(h, "src %s as %s\n", s.rel, path.Base(filepath.ToSlash(s.name)))
	return archive.WriteTree(ctx, h, filepath.Join(s.root, s.rel), archive.TreeOptions{Prefix: "x", Clamp: time.Unix(1, 0), Skip: r.skip(s), NoRoot: s.fi.IsDir()})
}

// copyLayer writes the sources into a container of the stage's image and
// returns its diff.
func (r *run) copyLayer(ctx context.Context, st *stage, srcs []source, dest string, dir bool, cs copySpec, mode *os.FileMode) (func(io.Writer) error, func(), error) {
	if st.empty() {
		// Scratch: the layer is the sources alone.
		return func(w io.Writer) error {
			return r.writeSources(ctx, w, "", srcs, dest, dir, cs, mode)
		}, func() {}, nil
	}
	bc, err := r.b.Containers.NewBuildContainer(ctx, st.img.ID.String(), container.Config{Cmd: []string{"true"}}, "none")
	if err != nil {
		return nil, nil, err
	}
	done := func() { _ = bc.Remove(ctx) }
	err = bc.WithRootfs(ctx, func(rootfs string) error {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(r.writeSources(ctx, pw, rootfs, srcs, dest, dir, cs, mode)) }()
		_, err := archive.Apply(ctx, rootfs, pr, archive.WithoutWhiteouts())
		pr.CloseWithError(errors.New("stopped"))
		return err
	})
	if err != nil {
		done()
		return nil, nil, err
	}
	return func(w io.Writer) error { return bc.WriteDiff(ctx, w, r.epoch) }, done, nil
}

// writeSources writes one tar stream of every source at its destination.
// rootfs ("" for scratch) resolves --chown names.
func (r *run) writeSources(ctx context.Context, w io.Writer, rootfs string, srcs []source, dest string, dir bool, cs copySpec, mode *os.FileMode) error {
	uid, gid := 0, 0
	if cs.chown != "" {
		var err error
		if uid, gid, err = chown(rootfs, cs.chown); err != nil {
			return err
		}
	}
	destRel := strings.Trim(path.Clean(dest), "/")
	if !dir && rootfs != "" && destRel != "" {
		// COPY file /dir (no slash) where /dir is a directory copies into
		// it, as Docker's.
		if p, err := securejoin.SecureJoin(rootfs, destRel); err == nil {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				dir = true
			}
		}
	}
	tw := tar.NewWriter(w)
	for _, s := range srcs {
		target := destRel
		if s.url != "" {
			if err := writeFetched(tw, s, target, dir, uid, gid, mode); err != nil {
				return err
			}
			continue
		}
		full := filepath.Join(s.root, s.rel)
		if dir && !s.fi.IsDir() {
			target = path.Join(destRel, path.Base(filepath.ToSlash(s.name)))
		}
		if cs.add && cs.unpack && s.fi.Mode().IsRegular() {
			if ok, err := extractTar(ctx, tw, full, destRel); ok || err != nil {
				if err != nil {
					return fmt.Errorf("ADD %s: %w", s.rel, err)
				}
				continue
			}
		}
		if err := appendTree(ctx, tw, full, target, archive.TreeOptions{UID: &uid, GID: &gid, Mode: mode, Skip: r.skip(s), NoRoot: s.fi.IsDir()}); err != nil {
			return err
		}
	}
	return tw.Close()
}

// appendTree adds the tree at src to tw under name.
func appendTree(ctx context.Context, tw *tar.Writer, src, name string, o archive.TreeOptions) error {
	pr, pw := io.Pipe()
	o.Prefix = name
	go func() { pw.CloseWithError(archive.WriteTree(ctx, pw, src, o)) }()
	defer pr.Close()
	return archive.CopyEntries(tw, tar.NewReader(pr), nil)
}

// extractTar copies a local tar archive's entries (plain or compressed)
// under dest, as ADD does; ok is false when the file is not an archive.
func extractTar(ctx context.Context, tw *tar.Writer, file, dest string) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	dr, _, err := archive.Decompress(bufio.NewReader(f))
	if err != nil {
		return false, nil
	}
	defer dr.Close()
	br := bufio.NewReaderSize(dr, 1024)
	head, _ := br.Peek(512)
	if len(head) < 512 || !bytes.Equal(head[257:262], []byte("ustar")) {
		return false, nil
	}
	err = archive.CopyEntries(tw, tar.NewReader(br), func(hdr *tar.Header) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		rel, err := contextPath(hdr.Name)
		if err != nil || rel == "" {
			return false, nil // Apply refuses escapes too; skip the archive's root
		}
		hdr.Name = path.Join(dest, rel)
		if hdr.Typeflag == tar.TypeDir {
			hdr.Name += "/"
		}
		if hdr.Typeflag == tar.TypeLink {
			l, err := contextPath(hdr.Linkname)
			if err != nil {
				return false, fmt.Errorf("hard link %s -> %s: %v", hdr.Name, hdr.Linkname, err)
			}
			hdr.Linkname = path.Join(dest, l)
		}
		return true, nil
	})
	return true, err
}

// download is ADD of a URL, before the cache is asked: the file, fetched
// into a temporary file (and checked against --checksum), so its content
// is part of the key.
func (r *run) download(ctx context.Context, s *source, want digest.Digest) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, s.url, nil)
	if err != nil {
		return errdefs.Invalidf("ADD %s: %v", s.url, err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ADD %s: fetching: %w", s.url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("ADD %s: fetching: %s", s.url, res.Status)
	}
	if r.b.TempDir != "" {
		if err := os.MkdirAll(r.b.TempDir, 0o700); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(r.b.TempDir, "add-")
	if err != nil {
		return err
	}
	defer tmp.Close()
	var dg digest.Digester
	var w io.Writer = tmp
	if want != "" {
		if !want.Algorithm().Available() {
			os.Remove(tmp.Name())
			return errdefs.Invalidf("ADD --checksum=%s: unsupported algorithm", want)
		}
		dg = want.Algorithm().Digester()
		w = io.MultiWriter(tmp, dg.Hash())
	}
	n, err := io.Copy(w, res.Body)
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("ADD %s: fetching: %w", s.url, err)
	}
	if dg != nil && dg.Digest() != want {
		os.Remove(tmp.Name())
		return errdefs.Invalidf("ADD %s: checksum mismatch: got %s, want %s", s.url, dg.Digest(), want)
	}
	s.file, s.size = tmp.Name(), n
	s.modTime = time.Unix(0, 0).UTC()
	if lm, err := http.ParseTime(res.Header.Get("Last-Modified")); err == nil {
		s.modTime = lm
	}
	return nil
}

// writeFetched writes a downloaded file at dest (in dest, named as the
// URL's last path part, when dest is a directory), mode 0600 as Docker's.
func writeFetched(tw *tar.Writer, s source, dest string, dir bool, uid, gid int, mode *os.FileMode) error {
	if dir {
		pu, _ := url.Parse(s.url)
		base := path.Base(pu.Path)
		if base == "/" || base == "." || base == "" {
			return errdefs.Invalidf("ADD %s: cannot determine a file name for the destination directory", s.url)
		}
		dest = path.Join(dest, base)
	}
	m := int64(0o600)
	if mode != nil {
		m = int64(*mode)
	}
	f, err := os.Open(s.file)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dest, Size: s.size, Mode: m, Uid: uid, Gid: gid, ModTime: s.modTime}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// chown reads --chown=USER[:GROUP], names looked up in the image's
// /etc/passwd and /etc/group.
func chown(rootfs, spec string) (int, int, error) {
	u, g, hasGroup := strings.Cut(spec, ":")
	uid, gidOfUser, err := lookup(rootfs, "etc/passwd", u, 2, 3)
	if err != nil {
		return 0, 0, fmt.Errorf("--chown=%s: %v", spec, err)
	}
	gid := gidOfUser
	if !hasGroup && gidOfUser < 0 {
		gid = uid
	}
	if hasGroup {
		if gid, _, err = lookup(rootfs, "etc/group", g, 2, -1); err != nil {
			return 0, 0, fmt.Errorf("--chown=%s: %v", spec, err)
		}
	}
	if gid < 0 {
		gid = uid
	}
	return uid, gid, nil
}

// lookup finds name (or a number) in a passwd-style file: the id at field
// idField and, if extra >= 0, the number at field extra (-1 when numeric).
func lookup(rootfs, file, name string, idField, extra int) (int, int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, -1, nil
	}
	if rootfs == "" {
		return 0, 0, fmt.Errorf("cannot look %q up: the image has no /%s", name, file)
	}
	p, err := securejoin.SecureJoin(rootfs, file)
	if err != nil {
		return 0, 0, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot look %q up: the image has no /%s", name, file)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > idField && f[0] == name {
			id, err := strconv.Atoi(f[idField])
			if err != nil {
				break
			}
			x := -1
			if extra >= 0 && len(f) > extra {
				x, _ = strconv.Atoi(f[extra])
			}
			return id, x, nil
		}
	}
	return 0, 0, fmt.Errorf("no %q in the image's /%s", name, file)
}
