package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/images"
)

// These builds use scratch stages only, which need no containers: the
// real image store under a temporary root, no root privileges.

// scratchBuild builds src from a context holding files, and returns the
// result's config and the builder's output.
func scratchBuild(t *testing.T, src string, files map[string]string, o Options) (*images.Service, *images.Resolved, string, error) {
	t.Helper()
	ctx := context.Background()
	svc, err := images.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files["Dockerfile"] = src
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if target, ok := strings.CutPrefix(body, "symlink:"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	o.ContextDir, o.Out = dir, &out
	b := &Builder{Images: svc, Tags: svc.Records, CacheDir: filepath.Join(t.TempDir(), "cache"), TempDir: t.TempDir()}
	res, err := b.Build(ctx, o)
	if err != nil {
		return svc, nil, out.String(), err
	}
	img, err := svc.Resolve(ctx, res.ID.String())
	if err != nil {
		t.Fatal(err)
	}
	return svc, img, out.String(), nil
}

// layerFiles lists the entries of an image's last layer, unpacked in the
// store.
func layerFiles(t *testing.T, svc *images.Service, img *images.Resolved) map[string]string {
	t.Helper()
	ids := img.Config.RootFS.DiffIDs
	if len(ids) == 0 {
		t.Fatal("the image has no layers")
	}
	root := layerPath(svc, ids[len(ids)-1])
	got := map[string]string{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			got[rel] = "symlink:" + l
		case fi.IsDir():
			got[rel] = "dir"
		default:
			b, _ := os.ReadFile(p)
			got[rel] = fmt.Sprintf("%s %o", b, fi.Mode().Perm())
		}
		return nil
	})
	return got
}

// Stages built side by side from one parent each change their own copy
// of the config: EXPOSE, VOLUME and ONBUILD of one do not leak into the
// other or the parent (run with -race: concurrent map writes crash).
func TestParallelStagesShareNoConfig(t *testing.T) {
	src := `FROM scratch AS a
ENV A=1
EXPOSE 80
VOLUME /v
LABEL a=1
FROM a AS b
EXPOSE 81
VOLUME /vb
ONBUILD RUN echo b
LABEL b=1
FROM a AS c
EXPOSE 82
VOLUME /vc
ONBUILD RUN echo c
LABEL c=1
`
	for range 3 {
		svc, err := images.New(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		r := &run{b: &Builder{Images: svc, Tags: svc.Records}, o: Options{}, out: &bytes.Buffer{}, meta: map[string]string{}, used: map[string]bool{}, built: map[int]*stageRun{}}
		need, err := r.plan("Dockerfile", src)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(need) != "[0 2]" {
			t.Fatalf("plan %v", need)
		}
		for _, i := range []int{0, 1, 2} {
			r.steps += 1 + len(r.stages[i].Commands)
		}
		if _, err := r.buildStages(context.Background(), []int{0, 1, 2}); err != nil {
			t.Fatal(err)
		}
		want := map[int]struct {
			ports, vols, onbuild, labels string
		}{
			0: {"[80/tcp]", "[/v]", "[]", "map[a:1]"},
			1: {"[80/tcp 81/tcp]", "[/v /vb]", "[RUN echo b]", "map[a:1 b:1]"},
			2: {"[80/tcp 82/tcp]", "[/v /vc]", "[RUN echo c]", "map[a:1 c:1]"},
		}
		for i, w := range want {
			cfg := r.built[i].st.cfg
			if got := fmt.Sprint(keys(cfg.ExposedPorts)); got != w.ports {
				t.Errorf("stage %d: ports %s, want %s", i, got, w.ports)
			}
			if got := fmt.Sprint(keys(cfg.Volumes)); got != w.vols {
				t.Errorf("stage %d: volumes %s, want %s", i, got, w.vols)
			}
			if got := fmt.Sprint(cfg.OnBuild); got != w.onbuild {
				t.Errorf("stage %d: onbuild %s, want %s", i, got, w.onbuild)
			}
			if got := fmt.Sprint(cfg.Labels); got != w.labels {
				t.Errorf("stage %d: labels %s, want %s", i, got, w.labels)
			}
		}
	}
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Docker's rules for CMD and ENTRYPOINT: ENTRYPOINT resets a CMD the stage
// inherited, never one it set itself.
func TestEntrypointResetsInheritedCmdOnly(t *testing.T) {
	for _, tc := range []struct{ src, cmd, entrypoint string }{
		{"FROM scratch\nCMD [\"a\"]\nENTRYPOINT [\"e\"]\n", "[a]", "[e]"},
		{"FROM scratch\nENTRYPOINT [\"e\"]\nCMD [\"a\"]\n", "[a]", "[e]"},
		{"FROM scratch AS base\nCMD [\"a\"]\nFROM base\nENTRYPOINT [\"e\"]\n", "[]", "[e]"},
		{"FROM scratch AS base\nCMD [\"a\"]\nENTRYPOINT [\"e\"]\nFROM base\nENTRYPOINT [\"e\"]\n", "[]", "[e]"},
		{"FROM scratch AS base\nCMD [\"a\"]\nFROM base\nLABEL x=y\n", "[a]", "[]"},
	} {
		// A scratch image of config alone: an ENV keeps it non-empty.
		_, img, out, err := scratchBuild(t, tc.src, map[string]string{}, Options{})
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.src, err, out)
		}
		c := img.Config.Config
		if fmt.Sprint(c.Cmd) != tc.cmd || fmt.Sprint(c.Entrypoint) != tc.entrypoint {
			t.Errorf("%q: Cmd %v Entrypoint %v, want %s %s", tc.src, c.Cmd, c.Entrypoint, tc.cmd, tc.entrypoint)
		}
	}
}

// An ARG's default is expanded once, as Docker's: an escaped $ stays.
func TestArgDefaultExpandedOnce(t *testing.T) {
	src := "FROM scratch\nENV B=bad\nARG A=\\$B\nARG C=${B}x\nENV GOT_A=$A GOT_C=$C\n"
	_, img, out, err := scratchBuild(t, src, map[string]string{}, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	env := img.Config.Config.Env
	if !slices.Contains(env, "GOT_A=$B") || !slices.Contains(env, "GOT_C=badx") {
		t.Errorf("env %v, want GOT_A=$B and GOT_C=badx", env)
	}
}

// An image of config alone (FROM scratch, ENV, WORKDIR) has no file
// system to mount: WORKDIR and COPY write their layers from nothing.
func TestZeroLayerImage(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want map[string]string
	}{
		{"FROM scratch AS empty\nENV X=1\nFROM empty\nLABEL l=1\nWORKDIR /app\n", map[string]string{"app": "dir"}},
		{"FROM scratch AS empty\nENV X=1\nFROM empty\nLABEL l=1\nCOPY f g /app/sub/\n", map[string]string{"app": "dir", "app/sub": "dir", "app/sub/f": "hello 644", "app/sub/g": "gee 644"}},
	} {
		svc, img, out, err := scratchBuild(t, tc.src, map[string]string{"f": "hello", "g": "gee"}, Options{})
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.src, err, out)
		}
		if n := len(img.Config.RootFS.DiffIDs); n != 1 {
			t.Fatalf("%q: %d layers, want 1", tc.src, n)
		}
		if got := layerFiles(t, svc, img); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%q: layer %v, want %v", tc.src, got, tc.want)
		}
	}
	if _, _, _, err := scratchBuild(t, "FROM scratch AS e\nENV X=1\nFROM scratch\nCOPY --from=e /x /x\n", map[string]string{}, Options{}); err == nil || !strings.Contains(err.Error(), "has no files") {
		t.Errorf("COPY --from an empty stage: %v, want a has-no-files error", err)
	}
	if _, _, _, err := scratchBuild(t, "FROM scratch\nENV X=1\nRUN true\n", map[string]string{}, Options{}); err == nil || !strings.Contains(err.Error(), "no file system") {
		t.Errorf("RUN in an empty image: %v, want a no-file-system error", err)
	}
}

// A symlinked source is copied as what it points to, under the name the
// Dockerfile wrote; the private name of an outside Dockerfile is never
// copied.
func TestCopySymlinkKeepsWrittenName(t *testing.T) {
	files := map[string]string{"real.txt": "content", "link.txt": "symlink:real.txt", OutsideDockerfile: "FROM scratch\n", "keep": "k"}
	for src, want := range map[string]map[string]string{
		"FROM scratch\nCOPY link.txt /d/\n":    {"d": "dir", "d/link.txt": "content 644"},
		"FROM scratch\nCOPY link.txt /named\n": {"named": "content 644"},
		"FROM scratch\nCOPY . /all/\n": {"all": "dir", "all/.berth-dockerfile": "", "all/Dockerfile": "FROM scratch\nCOPY . /all/\n 644",
			"all/keep": "k 644", "all/link.txt": "symlink:real.txt", "all/real.txt": "content 644"},
	} {
		svc, img, out, err := scratchBuild(t, src, files, Options{})
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		delete(want, "all/.berth-dockerfile") // listed to say: not there
		if got := layerFiles(t, svc, img); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q: layer %v, want %v", src, got, want)
		}
	}
}

// ADD --unpack=false keeps an archive whole; --checksum verifies a URL's
// content; flags berth does not implement are refused by name.
func TestAddFlags(t *testing.T) {
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	tw.WriteHeader(&tar.Header{Name: "inside.txt", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("in"))
	tw.Close()
	for src, want := range map[string]map[string]string{
		"FROM scratch\nADD --unpack=false a.tar /kept/\n": {"kept": "dir", "kept/a.tar": tarball.String() + " 644"},
		"FROM scratch\nADD a.tar /x/\n":                   {"x": "dir", "x/inside.txt": "in 644"},
	} {
		svc, img, out, err := scratchBuild(t, src, map[string]string{"a.tar": tarball.String()}, Options{})
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got := layerFiles(t, svc, img); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q: layer %q, want %q", src, got, want)
		}
	}
	body := "remote content\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }))
	defer srv.Close()
	sum := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(body)))
	svc, img, out, err := scratchBuild(t, "FROM scratch\nADD --checksum="+sum+" "+srv.URL+"/file.txt /r/\n", map[string]string{}, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := layerFiles(t, svc, img)["r/file.txt"]; got != body+" 600" {
		t.Errorf("ADD URL: %q", got)
	}
	bad := "sha256:" + strings.Repeat("0", 64)
	for src, want := range map[string]string{
		"FROM scratch\nADD --checksum=" + bad + " " + srv.URL + "/f /r/\n": "checksum mismatch",
		"FROM scratch\nADD --checksum=nope " + srv.URL + "/f /r/\n":        "--checksum=nope",
		"FROM scratch\nADD --checksum=" + sum + " a.tar /r/\n":             "only for http",
		"FROM scratch\nCOPY --exclude=*.txt . /\n":                         "COPY --exclude is not supported",
		"FROM scratch\nCOPY --parents a.tar /\n":                           "COPY --parents is not supported",
		"FROM scratch\nADD --exclude=x . /\n":                              "ADD --exclude is not supported",
	} {
		_, _, out, err := scratchBuild(t, src, map[string]string{"a.tar": "x"}, Options{})
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want a one-line error with %q\n%s", src, err, want, out)
		}
	}
}

// A COPY's cache key is what the step copies: a file .dockerignore leaves
// out of a copied directory changes nothing.
func TestCacheKeyHonoursDockerignore(t *testing.T) {
	ctx := context.Background()
	svc, err := images.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "src"), 0o755)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY src /src/\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("src/*.log\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "src", "a.go"), []byte("package a"), 0o644)
	os.WriteFile(filepath.Join(dir, "src", "x.log"), []byte("1"), 0o644)
	b := &Builder{Images: svc, Tags: svc.Records, CacheDir: filepath.Join(t.TempDir(), "cache")}
	build := func() (string, string) {
		var out bytes.Buffer
		res, err := b.Build(ctx, Options{ContextDir: dir, Out: &out})
		if err != nil {
			t.Fatal(err)
		}
		return res.ID.String(), out.String()
	}
	id1, _ := build()
	os.WriteFile(filepath.Join(dir, "src", "x.log"), []byte("2, changed"), 0o644)
	id2, out := build()
	if id1 != id2 || !strings.Contains(out, "Using cache") {
		t.Errorf("an ignored file's change rebuilt the COPY: %s vs %s\n%s", id1, id2, out)
	}
	os.WriteFile(filepath.Join(dir, "src", "a.go"), []byte("package b"), 0o644)
	if id3, _ := build(); id3 == id1 {
		t.Error("a copied file's change did not rebuild the COPY")
	}
	img, _ := svc.Resolve(ctx, id1)
	if _, ok := layerFiles(t, svc, img)["src/x.log"]; ok {
		t.Error("the ignored file was copied")
	}
}

func layerPath(svc *images.Service, h v1.Hash) string {
	return svc.Layers.Path(digest.Digest(h.String()))
}

// ADD of a URL: the file's content is in the cache key (a changed file
// rebuilds, the same file is a hit), and a fetch that fails says so in
// one line.
func TestAddURL(t *testing.T) {
	ctx := context.Background()
	body := "one\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	svc, err := images.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b := &Builder{Images: svc, Tags: svc.Records, CacheDir: filepath.Join(t.TempDir(), "cache"), TempDir: filepath.Join(t.TempDir(), "tmp")}
	build := func(src string) (string, string, error) {
		os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(src), 0o644)
		var out bytes.Buffer
		res, err := b.Build(ctx, Options{ContextDir: dir, Out: &out})
		return res.ID.String(), out.String(), err
	}
	src := "FROM scratch\nADD " + srv.URL + "/f.txt /\n"
	id1, _, err := build(src)
	if err != nil {
		t.Fatal(err)
	}
	id2, out, _ := build(src)
	if id2 != id1 || !strings.Contains(out, "Using cache") {
		t.Errorf("the same remote file missed the cache:\n%s", out)
	}
	body = "two\n"
	if id3, out, _ := build(src); id3 == id1 || strings.Contains(out, "Using cache") {
		t.Errorf("a changed remote file hit the cache:\n%s", out)
	}
	if ents, _ := os.ReadDir(b.TempDir); len(ents) != 0 {
		t.Errorf("downloads left in the temporary directory: %v", ents)
	}
	for url, want := range map[string]string{srv.URL + "/missing": "404", "http://127.0.0.1:1/x": "fetching"} {
		_, out, err := build("FROM scratch\nADD " + url + " /\n")
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ADD %s: %v, want a one-line error with %q\n%s", url, err, want, out)
		}
	}
}
