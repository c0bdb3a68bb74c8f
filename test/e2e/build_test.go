package e2e

// berth build, for real: the fixture projects under test/fixtures/build
// build from local base images (nothing is pulled), run under berth and
// under the real dockerd, and the cache, .dockerignore, reproducibility
// and bad input behave as Docker's classic builder.

import (
	"archive/tar"
	"compress/gzip"
	"encoding/binary"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/testutil"
)

// fixture copies a fixture project to a temporary directory the test may
// change.
func fixture(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("..", "fixtures", "build", name)
	dst := filepath.Join(t.TempDir(), name)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		return os.WriteFile(filepath.Join(dst, rel), b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// writeTarGz writes a gzip tar holding files, with fixed times.
func writeTarGz(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1600000000, 0), Typeflag: tar.TypeReg})
		io.WriteString(tw, body)
	}
	tw.Close()
	gz.Close()
}

// shellApp is the shell-app fixture with its generated files: the archive
// ADD unpacks, and files .dockerignore leaves out (and one it keeps).
func shellApp(t *testing.T) string {
	dir := fixture(t, "shell-app")
	writeTarGz(t, filepath.Join(dir, "data.tar.gz"), map[string]string{"payload/message.txt": "payload unpacked by ADD\n"})
	for name, body := range map[string]string{"notes.txt": "ignored\n", "debug.log": "ignored\n", "keep.log": "kept by an exception\n"} {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	return dir
}

func buildID(t *testing.T, d *testutil.Daemon, args ...string) string {
	t.Helper()
	return strings.TrimSpace(mustB(t, d, "", append([]string{"build", "-q"}, args...)...))
}

func TestBuildShellApp(t *testing.T) {
	d := ctrDaemon(t, "berth")
	ctx := shellApp(t)
	out := mustB(t, d, "", "build", "-t", "shell-app:1", "--build-arg", "VERSION=1.2.3", ctx)
	for _, want := range []string{"Step 1/", "FROM busybox", " ---> Running in ", "Successfully built ", "Successfully tagged shell-app:1"} {
		if !strings.Contains(out, want) {
			t.Errorf("build output lacks %q:\n%s", want, out)
		}
	}
	got := mustB(t, d, "", "run", "--rm", "shell-app:1")
	if got != "hello, world\nversion 1.2.3\npayload unpacked by ADD\n" {
		t.Errorf("run of the built image: %q", got)
	}
	if got := mustB(t, d, "", "run", "--rm", "shell-app:1", "berth"); !strings.HasPrefix(got, "hello, berth\n") {
		t.Errorf("run with arguments: %q", got)
	}
	// The config each instruction set.
	for tmpl, want := range map[string]string{
		"{{.Config.User}}":                                          "1000",
		"{{.Config.WorkingDir}}":                                    "/opt/app",
		"{{.Config.StopSignal}}":                                    "SIGINT",
		"{{json .Config.Entrypoint}} {{json .Config.Cmd}}":          `["/opt/app/app.sh"] ["world"]`,
		"{{range $k, $v := .Config.ExposedPorts}}{{$k}}{{end}}":     "8080/tcp",
		"{{range $k, $v := .Config.Volumes}}{{$k}}{{end}}":          "/data",
		`{{index .Config.Labels "org.opencontainers.image.title"}}`: "shell-app",
		"{{json .Config.Healthcheck.Test}}":                         `["CMD-SHELL","test -f /opt/app/VERSION"]`,
	} {
		if got := inspectField(t, d, "shell-app:1", tmpl); got != want {
			t.Errorf("image %s = %q, want %q", tmpl, got, want)
		}
	}
	if env := inspectField(t, d, "shell-app:1", "{{json .Config.Env}}"); !strings.Contains(env, `"APP_HOME=/opt/app"`) || !strings.Contains(env, `"GREETING=hello"`) || strings.Contains(env, "VERSION") {
		t.Errorf("image env (ARGs must not persist): %s", env)
	}
	// The file system each step made: a deletion (a whiteout), --chown and
	// --chmod, .dockerignore with its exception.
	fsCheck := `test ! -e /bin/vi && echo vi-gone; stat -c '%u:%g %a' /opt/owned.sh /data; ls /opt/src | tr '\n' ' '`
	want := "vi-gone\n1000:1000 640\n1000:1000 755\nDockerfile app.sh data.tar.gz keep.log lib "
	if got := mustB(t, d, "", "run", "--rm", "--user", "0", "--entrypoint", "sh", "shell-app:1", "-c", fsCheck); got != want {
		t.Errorf("the image's files:\n%s\nwant:\n%s", got, want)
	}
	if n := strings.Count(mustB(t, d, "", "images", "--format", "{{.Repository}}"), "\n"); n != 2 {
		t.Errorf("images lists %d images, want 2 (busybox and shell-app): the steps' images are hidden", n)
	}
	if n := strings.Count(mustB(t, d, "", "images", "-a", "-q"), "\n"); n < 10 {
		t.Errorf("images -a lists %d images, want the steps' too", n)
	}

	// The cache: nothing changed, nothing rebuilt, the same ID.
	id1 := inspectField(t, d, "shell-app:1", "{{.Id}}")
	again := mustB(t, d, "", "build", "-t", "shell-app:1", "--build-arg", "VERSION=1.2.3", ctx)
	if strings.Contains(again, "Running in") || strings.Count(again, "Using cache") < 15 {
		t.Errorf("a rebuild with nothing changed ran steps:\n%s", again)
	}
	if id := inspectField(t, d, "shell-app:1", "{{.Id}}"); id != id1 {
		t.Errorf("a rebuild with nothing changed gave %s, want %s", id, id1)
	}
	// A touched file (mtime only) is no change.
	future := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(ctx, "app.sh"), future, future)
	if id := buildID(t, d, "--build-arg", "VERSION=1.2.3", ctx); id != id1 {
		t.Errorf("touching a file changed the image: %s, want %s", id, id1)
	}
	// One changed file rebuilds from the step that copies it.
	os.WriteFile(filepath.Join(ctx, "lib", "greet.sh"), []byte(`greet() { echo "$GREETING there, $1"; }`+"\n"), 0o644)
	partial := mustB(t, d, "", "build", "-t", "shell-app:2", "--build-arg", "VERSION=1.2.3", ctx)
	steps := strings.Split(partial, "Step ")
	for _, s := range steps[1:] {
		cached := strings.Contains(s, "Using cache")
		before := strings.Contains(s, "COPY app.sh") || strings.Contains(s, "WORKDIR") || strings.Contains(s, "ENV ")
		after := strings.Contains(s, "COPY lib/") || strings.Contains(s, "RUN ") || strings.Contains(s, "COPY . ")
		if before && !cached || after && cached {
			t.Errorf("partial rebuild, step %q: cached=%v", strings.SplitN(s, "\n", 2)[0], cached)
		}
	}
	if got := mustB(t, d, "", "run", "--rm", "shell-app:2"); !strings.HasPrefix(got, "hello there, world") {
		t.Errorf("the rebuilt image runs the old file: %q", got)
	}
	// A different build arg is a different RUN.
	if id := buildID(t, d, "--build-arg", "VERSION=2", ctx); id == id1 {
		t.Error("a changed build arg gave the same image")
	}
	// --no-cache runs everything again (and its steps are the cache now).
	iid := filepath.Join(t.TempDir(), "iid")
	if nc := mustB(t, d, "", "build", "--no-cache", "--iidfile", iid, "--build-arg", "VERSION=1.2.3", ctx); strings.Contains(nc, "Using cache") || !strings.Contains(nc, "Running in") {
		t.Errorf("--no-cache used the cache:\n%s", nc)
	}
	latest, err := os.ReadFile(iid)
	if err != nil || !strings.HasPrefix(string(latest), "sha256:") {
		t.Fatalf("--iidfile: %q, %v", latest, err)
	}
	// The cache survives a daemon restart; builder prune empties it.
	d.Kill9()
	d.Restart()
	if id := buildID(t, d, "--build-arg", "VERSION=1.2.3", "-t", "shell-app:1", ctx); id != string(latest) {
		t.Errorf("after a daemon restart the cache missed: %s", id)
	}
	mustB(t, d, "", "builder", "prune", "-f")
	if again := mustB(t, d, "", "build", "--build-arg", "VERSION=1.2.3", ctx); strings.Contains(again, "Using cache") {
		t.Errorf("builder prune left the cache:\n%s", again)
	}
	mustB(t, d, "", "system", "check")
}

func TestBuildReproducible(t *testing.T) {
	// Two clean builds (every step run again) with SOURCE_DATE_EPOCH:
	// the same image ID, layer for layer.
	ctx := shellApp(t)
	d := ctrDaemon(t, "berth")
	var ids []string
	for range 2 {
		ids = append(ids, buildID(t, d, "--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "--build-arg", "VERSION=r", ctx))
		if c := inspectField(t, d, ids[len(ids)-1], "{{.Created}}"); !strings.HasPrefix(c, "2023-11-14T22:13:20") {
			t.Errorf("created %s, want SOURCE_DATE_EPOCH", c)
		}
	}
	if ids[0] != ids[1] {
		t.Errorf("two clean builds differ: %s and %s", ids[0], ids[1])
	}
}

func TestBuildStaticSiteRunsUnderBerthAndDockerd(t *testing.T) {
	d := ctrDaemon(t, "berth")
	mustB(t, d, "", "build", "-t", "static-site:1", fixture(t, "static-site"))
	mustB(t, d, "", "build", "-t", "shell-app:1", "--build-arg", "VERSION=d", shellApp(t))
	id := strings.TrimSpace(mustB(t, d, "", "run", "-d", "-p", "127.0.0.1::80", "static-site:1"))
	port := strings.TrimSpace(mustB(t, d, "", "port", id, "80"))
	var body string
	waitFor(t, "the site to answer", 10*time.Second, func() bool {
		res, err := http.Get("http://" + port + "/index.html")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		body = string(b)
		return res.StatusCode == 200
	})
	if !strings.Contains(body, "served by busybox httpd") {
		t.Errorf("the site served %q", body)
	}
	mustB(t, d, "", "rm", "-f", id)

	// The same images load into the real dockerd and run there the same.
	host := dockerd(t)
	saved := filepath.Join(t.TempDir(), "built.tar")
	mustB(t, d, "", "save", "-o", saved, "static-site:1", "shell-app:1")
	docker(t, host, "load", "-i", saved)
	if got := docker(t, host, "run", "--rm", "--network", "none", "static-site:1", "cat", "/www/index.html"); !strings.Contains(got, "served by busybox httpd") {
		t.Errorf("dockerd run of the site image: %q", got)
	}
	if got := docker(t, host, "run", "--rm", "--network", "none", "shell-app:1"); got != "hello, world\nversion d\npayload unpacked by ADD\n" {
		t.Errorf("dockerd run of the shell app: %q", got)
	}
}

func TestBuildThroughDockerCLI(t *testing.T) {
	d := ctrDaemon(t, "berth")
	// The docker CLI's classic builder against berth's socket.
	out, errOut, code := d.Docker("", "build", "-t", "via-docker:1", "--build-arg", "VERSION=docker", shellApp(t))
	if code != 0 || !strings.Contains(out, "Successfully tagged via-docker:1") {
		t.Fatalf("docker build: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := mustB(t, d, "", "run", "--rm", "via-docker:1"); !strings.Contains(got, "version docker") {
		t.Errorf("run of the image docker built through berth: %q", got)
	}
	// A failing step: docker's own message and a non-zero exit.
	ctx := t.TempDir()
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox\nRUN echo about to fail; exit 3\n"), 0o644)
	out, errOut, code = d.Docker("", "build", ctx)
	if code == 0 || !strings.Contains(out+errOut, "returned a non-zero code: 3") || !strings.Contains(out+errOut, "about to fail") {
		t.Errorf("docker build of a failing RUN: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestBuildBadInput(t *testing.T) {
	d := ctrDaemon(t, "berth")
	before := mustB(t, d, "", "images", "-a", "-q")
	for _, tc := range []struct {
		name, dockerfile string
		files            map[string]string
		args             []string
		want             []string
	}{
		{name: "syntax", dockerfile: "FROM busybox\nEXPOSE 8080\nENV\n", want: []string{"line 3", "ENV"}},
		{name: "unknown instruction", dockerfile: "FROM busybox\nFROBNICATE now\n", want: []string{"line 2", "unknown instruction: FROBNICATE"}},
		{name: "no FROM", dockerfile: "RUN true\n", want: []string{"no build stage"}},
		{name: "missing base", dockerfile: "FROM localhost:1/nosuch/image:1\n", want: []string{"nosuch/image"}},
		{name: "outside the context", dockerfile: "FROM busybox\nCOPY ../secret /x\n", want: []string{"outside the build context"}},
		{name: "missing source", dockerfile: "FROM busybox\nCOPY nothere.txt /x\n", want: []string{"nothere.txt"}},
		{name: "ignored source", dockerfile: "FROM busybox\nCOPY hidden.txt /x\n", files: map[string]string{"hidden.txt": "x", ".dockerignore": "hidden.txt\n"}, want: []string{"excluded by .dockerignore"}},
		{name: "failing RUN", dockerfile: "FROM busybox\nRUN echo the tail of the output; exit 7\n", want: []string{"returned a non-zero code: 7", "the tail of the output"}},
		{name: "unknown target", dockerfile: "FROM busybox AS a\n", args: []string{"--target", "b"}, want: []string{`target stage "b"`}},
		{name: "foreign platform", dockerfile: "FROM --platform=linux/s390x busybox\n", want: []string{"host platform"}},
		{name: "bad chmod", dockerfile: "FROM busybox\nCOPY Dockerfile --chmod=999 /x\n", want: []string{"COPY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.TempDir()
			os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(tc.dockerfile), 0o644)
			for n, b := range tc.files {
				os.WriteFile(filepath.Join(ctx, n), []byte(b), 0o644)
			}
			args := append(append([]string{"build", "-t", "bad:1"}, tc.args...), ctx)
			out, errOut, code := d.Berth("", args...)
			if code == 0 {
				t.Fatalf("berth build succeeded:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out+errOut, w) {
					t.Errorf("output lacks %q:\nstdout: %s\nstderr: %s", w, out, errOut)
				}
			}
			if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 {
				t.Errorf("the error is not one line: %q", errOut)
			}
		})
	}
	// Quiet hides the steps, but a failure shows the failing step's end.
	ctx := t.TempDir()
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox\nRUN echo quiet tail; exit 4\n"), 0o644)
	if out, errOut, code := d.Berth("", "build", "-q", ctx); code == 0 || out != "" || !strings.Contains(errOut, "quiet tail") || !strings.Contains(errOut, "non-zero code: 4") {
		t.Errorf("build -q of a failing RUN: exit %d\nstdout: %q\nstderr: %q", code, out, errOut)
	}

	// A symlink in the context resolves inside it: no host file can be
	// copied through one.
	ctx = t.TempDir()
	os.Symlink("/etc", filepath.Join(ctx, "hostetc"))
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox\nCOPY hostetc/hostname /x\n"), 0o644)
	if out, errOut, code := d.Berth("", "build", "-t", "bad:1", ctx); code == 0 || !strings.Contains(errOut, "file not found") {
		t.Errorf("COPY through a symlink to the host: exit %d\n%s\n%s", code, out, errOut)
	}
	// One that points inside the context is followed there.
	os.MkdirAll(filepath.Join(ctx, "sub"), 0o755)
	os.WriteFile(filepath.Join(ctx, "sub", "f.txt"), []byte("inside\n"), 0o644)
	os.Symlink("sub", filepath.Join(ctx, "inner"))
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox\nCOPY inner/f.txt /x/\nRUN grep -q inside /x/f.txt\n"), 0o644)
	if out, errOut, code := d.Berth("", "build", ctx); code != 0 {
		t.Errorf("COPY through a symlink inside the context: exit %d\n%s\n%s", code, out, errOut)
	}
	// BuildKit's automatic platform args name the host.
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\nRUN test -n \"$TARGETARCH\" && echo arch=$TARGETARCH\n"), 0o644)
	if out, errOut, code := d.Berth("", "build", ctx); code != 0 || !strings.Contains(out, "arch=amd64") && !strings.Contains(out, "arch=arm64") {
		t.Errorf("FROM --platform=$BUILDPLATFORM: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, _, code := d.Berth("", "image", "inspect", "bad:1"); code == 0 {
		t.Error("a failed build tagged an image")
	}
	// Failed builds leave no container behind.
	if ps := mustB(t, d, "", "ps", "-a", "-q"); ps != "" {
		t.Errorf("failed builds left containers: %q", ps)
	}
	_ = before
}

// golangImage makes golang:local: busybox with the host's Go toolchain
// (sources without tests and tools' sources), nothing pulled.
func golangImage(t *testing.T, d *testutil.Daemon) {
	t.Helper()
	goroot := strings.TrimSpace(string(must(exec.Command("go", "env", "GOROOT").Output())))
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := copyTar(tw, busyboxTar(t))
		for _, sub := range []string{"bin", "pkg/tool", "pkg/include", "src", "lib", "go.env", "VERSION"} {
			if err != nil {
				break
			}
			root := filepath.Join(goroot, sub)
			err = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(goroot, p)
				if fi.IsDir() && (fi.Name() == "testdata" || rel == "src/cmd") || strings.HasSuffix(p, "_test.go") {
					if fi.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
				var link string
				if fi.Mode()&os.ModeSymlink != 0 {
					link, _ = os.Readlink(p)
				}
				hdr, _ := tar.FileInfoHeader(fi, link)
				hdr.Name = "usr/local/go/" + filepath.ToSlash(rel)
				if err := tw.WriteHeader(hdr); err != nil {
					return err
				}
				if fi.Mode().IsRegular() {
					f, err := os.Open(p)
					if err != nil {
						return err
					}
					defer f.Close()
					_, err = io.Copy(tw, f)
					return err
				}
				return nil
			})
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	cmd := exec.Command(berthBin, "import", "--change", "ENV PATH=/usr/local/go/bin:/usr/bin:/bin", "-", "golang:local")
	cmd.Env = d.Env()
	cmd.Stdin = pr
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("importing the Go toolchain image: %v\n%s", err, out)
	}
}

func copyTar(tw *tar.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return archive.CopyEntries(tw, tar.NewReader(f), nil)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestBuildGoMultiStage(t *testing.T) {
	d := ctrDaemon(t, "berth")
	golangImage(t, d)
	ctx := fixture(t, "go-hello")
	out := mustB(t, d, "", "build", "-t", "go-hello:1", ctx)
	if !strings.Contains(out, "Successfully tagged go-hello:1") {
		t.Fatalf("build output:\n%s", out)
	}
	if got := mustB(t, d, "", "run", "--rm", "go-hello:1", "berth"); got != "hello, berth, from a Go program berth built\n" {
		t.Errorf("run of the Go image: %q", got)
	}
	// The final image is the binary alone: one layer, on scratch.
	if n := inspectField(t, d, "go-hello:1", "{{len .RootFS.Layers}}"); n != "1" {
		t.Errorf("the final image has %s layers, want 1", n)
	}
	// The real dockerd runs it the same way.
	host := dockerd(t)
	saved := filepath.Join(t.TempDir(), "go-hello.tar")
	mustB(t, d, "", "save", "-o", saved, "go-hello:1")
	docker(t, host, "load", "-i", saved)
	if got := docker(t, host, "run", "--rm", "--network", "none", "go-hello:1", "docker"); got != "hello, docker, from a Go program berth built\n" {
		t.Errorf("dockerd run of the Go image: %q", got)
	}
	// --target builds the first stage only: the toolchain image.
	out = mustB(t, d, "", "build", "--target", "build", "-t", "go-build:1", ctx)
	if strings.Contains(out, "FROM scratch") {
		t.Errorf("--target build built the later stage:\n%s", out)
	}
	if got := mustB(t, d, "", "run", "--rm", "go-build:1", "/out/hello"); !strings.Contains(got, "hello, world") {
		t.Errorf("the build stage's binary: %q", got)
	}
}

func TestBuildParallelStages(t *testing.T) {
	d := ctrDaemon(t, "berth")
	ctx := t.TempDir()
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(`FROM busybox AS a
RUN sleep 1 && echo a > /a
FROM busybox AS b
RUN sleep 1 && echo b > /b
FROM busybox AS unused
RUN exit 1
FROM busybox
COPY --from=a /a /a
COPY --from=b /b /b
RUN cat /a /b
`), 0o644)
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	out := mustB(t, d, "", "build", "-t", "par:1", ctx)
	// The output is in stage order, whole; the unused stage is not built.
	if strings.Contains(out, "exit 1") || !strings.Contains(out, "Step 2/8 : RUN sleep 1 && echo a") || !strings.Contains(out, "a\nb\n") {
		t.Errorf("build output:\n%s", out)
	}
	if strings.Index(out, "echo a") > strings.Index(out, "echo b") {
		t.Errorf("stage output out of order:\n%s", out)
	}
	// The two independent stages ran at once: each started before the
	// other ended (each RUN takes a second).
	until := strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)
	time.Sleep(1100 * time.Millisecond)
	evs := mustB(t, d, "", "events", "--since", since, "--until", until, "--filter", "label=berth.build.step", "--filter", "event=start", "--filter", "event=die", "--format", "{{.Action}} {{.Actor.ID}}")
	lines := strings.Split(strings.TrimSpace(evs), "\n")
	if len(lines) < 4 || !strings.HasPrefix(lines[0], "start") || !strings.HasPrefix(lines[1], "start") {
		t.Errorf("the independent stages did not overlap; build container events:\n%s", evs)
	}
}

// Docker's classic-builder rules that are easy to get wrong: COPY onto an
// existing directory, proxy build args, -f and .dockerignore, quiet
// output, file capabilities in layers.
func TestBuildDockerSemantics(t *testing.T) {
	d := ctrDaemon(t, "berth")
	ctx := t.TempDir()
	os.MkdirAll(filepath.Join(ctx, "build"), 0o755)
	os.WriteFile(filepath.Join(ctx, "f.txt"), []byte("into etc\n"), 0o644)
	os.WriteFile(filepath.Join(ctx, "capfile"), []byte("#!/bin/sh\n"), 0o755)
	capv2 := make([]byte, 20) // version 2, CAP_NET_BIND_SERVICE effective
	binary.LittleEndian.PutUint32(capv2[0:], 0x02000001)
	binary.LittleEndian.PutUint32(capv2[4:], 1<<10)
	if err := unix.Setxattr(filepath.Join(ctx, "capfile"), "security.capability", capv2, 0); err != nil {
		t.Fatal(err)
	}
	// The Dockerfile sits in a directory .dockerignore excludes: -f still
	// finds it (the CLI sends it; COPY does not see the directory).
	os.WriteFile(filepath.Join(ctx, ".dockerignore"), []byte("build\n"), 0o644)
	os.WriteFile(filepath.Join(ctx, "build", "Dockerfile"), []byte(`FROM busybox
COPY f.txt /etc
RUN test -f /etc/f.txt && test -f /etc/passwd && echo copied-into-etc
RUN echo "proxy=$HTTP_PROXY"
COPY capfile /usr/bin/capfile
COPY . /ctx/
RUN test ! -e /ctx/build && echo no-build-dir
`), 0o644)
	out := mustB(t, d, "", "build", "-f", filepath.Join(ctx, "build", "Dockerfile"), "--build-arg", "HTTP_PROXY=http://127.0.0.1:9/", "-t", "sem:1", ctx)
	for _, want := range []string{"copied-into-etc", "proxy=http://127.0.0.1:9/", "no-build-dir", "Successfully tagged sem:1"} {
		if !strings.Contains(out, want) {
			t.Errorf("build output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "were not consumed") {
		t.Errorf("a proxy build arg was reported unused:\n%s", out)
	}
	// The proxy is in no image config or history, and a new proxy value
	// rebuilds nothing.
	if env := inspectField(t, d, "sem:1", "{{json .Config.Env}}"); strings.Contains(env, "PROXY") {
		t.Errorf("the proxy build arg is in the image's env: %s", env)
	}
	if h := mustB(t, d, "", "history", "--no-trunc", "sem:1"); strings.Contains(h, "127.0.0.1:9") {
		t.Errorf("the proxy is in the history:\n%s", h)
	}
	out = mustB(t, d, "", "build", "-f", filepath.Join(ctx, "build", "Dockerfile"), "--build-arg", "HTTP_PROXY=http://127.0.0.1:10/", "-t", "sem:2", ctx)
	if strings.Contains(out, "Running in") {
		t.Errorf("a changed proxy rebuilt steps:\n%s", out)
	}
	// The capability is in the layer, as Docker's builder keeps it.
	saved := filepath.Join(t.TempDir(), "sem.tar")
	mustB(t, d, "", "save", "-o", saved, "sem:1")
	if got := layerXattr(t, saved, "usr/bin/capfile", "security.capability"); got != string(capv2) {
		t.Errorf("security.capability of usr/bin/capfile in the saved layers: %q, want %q", got, capv2)
	}

	// A Dockerfile from outside the context is not copied by COPY . .
	outside := filepath.Join(t.TempDir(), "Dockerfile.outside")
	os.WriteFile(outside, []byte("FROM busybox\nCOPY . /ctx/\nRUN ls -a /ctx && test ! -e /ctx/.berth-dockerfile\n"), 0o644)
	mustB(t, d, "", "build", "-f", outside, ctx)

	// Quiet, through both CLIs: the image ID and nothing else.
	id := buildID(t, d, "-f", filepath.Join(ctx, "build", "Dockerfile"), ctx)
	if !strings.HasPrefix(id, "sha256:") || strings.Contains(id, "\n") {
		t.Errorf("berth build -q printed %q", id)
	}
	dout, derr, code := d.Docker("", "build", "-q", "-f", filepath.Join(ctx, "build", "Dockerfile"), ctx)
	if code != 0 || strings.TrimSpace(dout) != id {
		t.Errorf("docker build -q: exit %d, stdout %q (want %q)\n%s", code, dout, id, derr)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "Dockerfile"), []byte("FROM busybox\nRUN echo quiet-failure-tail; exit 5\n"), 0o644)
	dout, derr, code = d.Docker("", "build", "-q", bad)
	if code == 0 || !strings.Contains(dout+derr, "quiet-failure-tail") || !strings.Contains(dout+derr, "non-zero code: 5") {
		t.Errorf("docker build -q of a failing RUN: exit %d\n%s\n%s", code, dout, derr)
	}
}

// layerXattr finds name in the layers of a docker-archive and returns its
// xattr key.
func layerXattr(t *testing.T, saved, name, key string) string {
	t.Helper()
	f, err := os.Open(saved)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	outer := tar.NewReader(f)
	for {
		hdr, err := outer.Next()
		if err != nil {
			break
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		dr, _, err := archive.Decompress(outer)
		if err != nil {
			continue
		}
		inner := tar.NewReader(dr)
		for {
			h, err := inner.Next()
			if err != nil {
				break
			}
			if strings.TrimPrefix(h.Name, "./") == name {
				return h.PAXRecords["SCHILY.xattr."+key]
			}
		}
	}
	return ""
}

// A daemon killed while a build runs leaves nothing behind once it is back:
// its step containers and the build's files are removed at start.
func TestBuildKilledDaemonLeavesNothing(t *testing.T) {
	d := ctrDaemon(t, "berth")
	ctx := t.TempDir()
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox\nRUN sleep 60\n"), 0o644)
	cmd := exec.Command(berthBin, "build", ctx)
	cmd.Env = d.Env()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for mustB(t, d, "", "ps", "-q", "--filter", "label=berth.build.step") == "" {
		if time.Now().After(deadline) {
			t.Fatal("the build's RUN container never ran")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.Root, "build", "tmp")); len(ents) == 0 {
		t.Fatal("no build context on disk while the build runs")
	}
	d.Kill9()
	d.Restart()
	if ps := mustB(t, d, "", "ps", "-a", "-q", "--filter", "label=berth.build.step"); ps != "" {
		t.Errorf("build step containers left after the restart: %q", ps)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.Root, "build", "tmp")); len(ents) != 0 {
		t.Errorf("build files left after the restart: %v", ents)
	}
}
