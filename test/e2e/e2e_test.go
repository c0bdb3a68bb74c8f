// Package e2e drives the built berth binary against real peers: Debian's
// docker-registry and skopeo. Tests need root (they skip without it).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
)

// berthBin is the berth binary TestMain builds once for every test.
var berthBin string

// TestMain builds berth once. BERTH_E2E_BINARY names a binary to test
// instead (a release build, or one built with -overlay).
func TestMain(m *testing.M) {
	if bin := os.Getenv("BERTH_E2E_BINARY"); bin != "" {
		berthBin = bin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		panic(err)
	}
	berthBin, err = testutil.BuildBerth(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's berth daemon, with its own root, exec root and
// socket; the berth CLI talks to it through BERTH_HOST.
type env struct {
	t *testing.T
	d *testutil.Daemon
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{t: t, d: testutil.StartDaemon(t, berthBin)}
}

// root is the daemon's store.
func (e *env) root() string { return e.d.Root }

// berth runs the CLI against the daemon and returns stdout, stderr and the
// exit code.
func (e *env) berth(args ...string) (string, string, int) {
	e.t.Helper()
	return e.d.Berth("", args...)
}

// ok runs berth and fails the test on a non-zero exit.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	return e.okWith(nil, "", args...)
}

// okWith is ok with extra environment variables and a stdin.
func (e *env) okWith(extraEnv []string, stdin string, args ...string) string {
	e.t.Helper()
	cmd := e.command(args...)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("berth %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// command is an unstarted berth CLI talking to the daemon.
func (e *env) command(args ...string) *exec.Cmd {
	cmd := exec.Command(berthBin, args...)
	cmd.Env = e.d.Env()
	return cmd
}

func baseRootfs(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	out, err := exec.Command("bash", "../../scripts/mkbase.sh", p).CombinedOutput()
	if err != nil {
		t.Fatalf("mkbase.sh: %v\n%s", err, out)
	}
	return p
}

func TestCLIEndToEnd(t *testing.T) {
	e := newEnv(t)
	reg := testutil.StartRegistry(t)
	tarball := baseRootfs(t)

	id := strings.TrimSpace(e.ok("import", "--change", `CMD ["/bin/sh"]`, "--change", "ENV PATH=/bin", "-m", "base", tarball, "busybox:latest"))
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("import printed %q, want an image ID", id)
	}
	if got := e.ok("image", "inspect", "--format", "{{.Id}} {{.Config.Cmd}} {{.Os}}", "busybox"); strings.TrimSpace(got) != id+" [/bin/sh] linux" {
		t.Fatalf("inspect = %q", got)
	}
	// images: table, quiet and JSON forms.
	if got := e.ok("images"); !strings.Contains(got, "REPOSITORY") || !strings.Contains(got, "busybox") || !strings.Contains(got, id[7:19]) {
		t.Fatalf("images = %q", got)
	}
	if got := strings.TrimSpace(e.ok("images", "-q")); got != id[7:19] {
		t.Fatalf("images -q = %q, want %q", got, id[7:19])
	}
	var row map[string]string
	if err := json.Unmarshal([]byte(e.ok("images", "--format", "json")), &row); err != nil || row["Repository"] != "busybox" || row["Tag"] != "latest" {
		t.Fatalf("images --format json = %v, %v", row, err)
	}

	// Push, then skopeo sees the same manifest digest berth reports.
	target := reg.Addr + "/e2e/busybox:1"
	e.ok("tag", "busybox", target)
	pushOut := e.ok("push", target)
	raw := testutil.Skopeo(t, "inspect", "--raw", "--tls-verify=false", "docker://"+target)
	manifestDigest := sha(raw)
	if !strings.Contains(pushOut, "1: digest: "+manifestDigest) {
		t.Fatalf("push output %q does not report %s", pushOut, manifestDigest)
	}
	// Remove everything, pull back: same image ID.
	e.ok("rmi", "busybox", target)
	if got := strings.TrimSpace(e.ok("images", "-q")); got != "" {
		t.Fatalf("images after rmi = %q", got)
	}
	pullOut := e.ok("pull", target)
	if !strings.Contains(pullOut, "Digest: "+manifestDigest) || !strings.HasSuffix(strings.TrimSpace(pullOut), target) {
		t.Fatalf("pull output = %q", pullOut)
	}
	if got := strings.TrimSpace(e.ok("image", "inspect", "--format", "{{.Id}}", target)); got != id {
		t.Fatalf("pulled ID %s, want %s", got, id)
	}
	if got := e.ok("images", "--digests"); !strings.Contains(got, manifestDigest) {
		t.Fatalf("images --digests = %q, want %s", got, manifestDigest)
	}

	// Save, load into a fresh root: same ID and layers.
	archive := filepath.Join(t.TempDir(), "img.tar")
	e.ok("save", "-o", archive, target)
	e2 := newEnv(t)
	if got := e2.ok("load", "-i", archive); !strings.Contains(got, "Loaded image: "+target) {
		t.Fatalf("load = %q", got)
	}
	for _, f := range []string{"{{.Id}}", "{{.RootFS.Layers}}"} {
		a, b := e.ok("image", "inspect", "--format", f, target), e2.ok("image", "inspect", "--format", f, target)
		if a != b {
			t.Fatalf("after save/load %s: %q != %q", f, a, b)
		}
	}
	if got := e.ok("history", target); !strings.Contains(got, "base") {
		t.Fatalf("history = %q, want the import message", got)
	}
	if got := e.ok("system", "df"); !strings.Contains(got, "Images") {
		t.Fatalf("system df = %q", got)
	}
	if got := e.ok("system", "check"); !strings.Contains(got, "ok") {
		t.Fatalf("system check = %q", got)
	}
	e.ok("image", "prune", "-a", "-f")
	if got := strings.TrimSpace(e.ok("images", "-q")); got != "" {
		t.Fatalf("images after prune -a = %q", got)
	}
	if blobs, _ := filepath.Glob(filepath.Join(e.root(), "content", "blobs", "sha256", "*")); len(blobs) != 0 {
		t.Fatalf("prune -a left %d blobs", len(blobs))
	}
	if layers, _ := filepath.Glob(filepath.Join(e.root(), "snapshots", "layers", "sha256", "*")); len(layers) != 0 {
		t.Fatalf("prune -a left %d layers", len(layers))
	}
}

func TestLoginLogout(t *testing.T) {
	e := newEnv(t)
	reg := testutil.StartRegistry(t, testutil.WithBasicAuth("alice", "s3cret"))
	unauthorized := func(errs string) bool {
		return (strings.Contains(errs, "401") || strings.Contains(strings.ToLower(errs), "unauthorized")) &&
			!strings.Contains(strings.TrimSpace(errs), "\n")
	}
	if _, errs, code := e.berth("login", "-u", "alice", "-p", "wrong", reg.Addr); code != 1 || !unauthorized(errs) {
		t.Fatalf("login with a wrong password: exit %d, %q; want 1 and a one-line 401", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dockerConfig(e.d), "config.json")); err == nil {
		t.Fatal("a failed login stored credentials")
	}
	// The daemon checks the credentials; the CLI stores them in its own
	// DOCKER_CONFIG (d.Env gives each test a private one).
	out, errs, code := e.d.Berth("s3cret\n", "login", "-u", "alice", "--password-stdin", reg.Addr)
	if code != 0 || !strings.Contains(out+errs, "Login Succeeded") {
		t.Fatalf("login: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	b, err := os.ReadFile(filepath.Join(dockerConfig(e.d), "config.json"))
	if err != nil || !strings.Contains(string(b), reg.Addr) || !strings.Contains(string(b), "YWxpY2U6czNjcmV0") {
		t.Fatalf("config.json after login: %s, %v", b, err)
	}
	// With the stored credentials, push and pull work against the
	// authenticated registry.
	e.ok("import", baseRootfs(t), reg.Addr+"/private/img:1")
	e.ok("push", reg.Addr+"/private/img:1")
	e.ok("rmi", reg.Addr+"/private/img:1")
	e.ok("pull", reg.Addr+"/private/img:1")
	e.ok("logout", reg.Addr)
	e.ok("rmi", reg.Addr+"/private/img:1")
	if _, errs, code := e.berth("pull", reg.Addr+"/private/img:1"); code != 1 || !unauthorized(errs) {
		t.Fatalf("pull after logout: exit %d, %q; want 1 and a one-line 401", code, errs)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	reg := testutil.StartRegistry(t)
	// Errors the daemon reports exit 1, as docker's do; errors in how the
	// CLI was called exit 125 and add a "See --help" line.
	for _, tt := range []struct {
		args    []string
		mention string
		code    int
	}{
		{[]string{"pull", "UPPER/case"}, "must be lowercase", 1},
		{[]string{"pull", "busybox@sha256:123"}, "digest", 1},
		{[]string{"pull", reg.Addr + "/missing/image:1"}, "not found", 1},
		{[]string{"pull", "127.0.0.1:1/nothing:1"}, "127.0.0.1:1", 1},
		{[]string{"load", "-i", "/nonexistent.tar"}, "no such file", 1},
		{[]string{"import", "--change", "RUN rm -rf /", "-", "x"}, "RUN", 1},
		// Docker's wording for a push of a missing tag.
		{[]string{"push", "notlocal:1"}, "does not exist locally", 1},
		{[]string{"rmi", "notlocal:1"}, "notlocal:1", 1},
		{[]string{"image", "inspect", "notlocal:1"}, "no such image", 1},
		{[]string{"-H", "unix://" + filepath.Join(t.TempDir(), "none.sock"), "images"}, "cannot connect", 1},
		{[]string{"pull"}, "requires exactly 1 argument", 125},
		{[]string{"images", "--no-such-flag"}, "unknown flag", 125},
	} {
		out, errs, code := e.berth(tt.args...)
		if code != tt.code {
			t.Errorf("berth %v: exit %d, want %d (stdout %q, stderr %q)", tt.args, code, tt.code, out, errs)
			continue
		}
		if !strings.Contains(strings.ToLower(errs), strings.ToLower(tt.mention)) {
			t.Errorf("berth %v: stderr %q does not mention %q", tt.args, errs, tt.mention)
		}
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if tt.code == 125 && len(lines) == 2 && strings.HasPrefix(lines[1], "See '") {
			lines = lines[:1]
		}
		if len(lines) > 1 {
			t.Errorf("berth %v: error spans %d lines: %q", tt.args, len(lines), errs)
		}
	}
	if got := strings.TrimSpace(e.ok("images", "-q")); got != "" {
		t.Fatalf("failed commands left images: %q", got)
	}
	e.ok("system", "check")
}

// TestKill9DuringPull kills the daemon with SIGKILL in the middle of a
// large layer that a CLI is pulling through it. The CLI reports the lost
// connection on one line; the restarted daemon's store is consistent (no
// image, the partial layer not visible as a blob, `system check` clean),
// and the next pull resumes the layer with a Range request and succeeds.
func TestKill9DuringPull(t *testing.T) {
	e := newEnv(t)
	reg := testutil.StartRegistry(t)
	big := make([]byte, 48<<20)
	rand.New(rand.NewSource(7)).Read(big)
	l := testutil.WriteOCILayout(t, t.TempDir(), "big", []testutil.Layer{
		{Files: map[string]string{"small": "x"}, Compression: "gzip"},
		{Files: map[string]string{"big": string(big)}, Compression: "gzip"},
	})
	reg.PushLayout(t, l, "e2e/big")
	p := &throttle{target: reg.Addr, rate: 8 << 20}
	addr := p.start(t)
	ref := addr + "/e2e/big:big"

	cmd := e.command("pull", "-q", ref)
	var cliErr bytes.Buffer
	cmd.Stderr = &cliErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ingest := filepath.Join(e.root(), "content", "ingest", "sha256-"+l.LayerDigests[1].Encoded(), "data")
	testutil.WaitFor(t, 30*time.Second, "ingest of the big layer to grow past 4 MiB", func() bool {
		fi, err := os.Stat(ingest)
		return err == nil && fi.Size() > 4<<20
	})
	e.d.Kill9()
	err := cmd.Wait()
	if err == nil {
		t.Fatal("the pull succeeded although its daemon was killed")
	}
	if msg := strings.TrimSpace(cliErr.String()); msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("the CLI whose daemon died reported %q, want one line", msg)
	}
	if _, _, code := e.berth("images"); code == 0 {
		t.Fatal("images succeeded with the daemon dead")
	}

	e.d.Restart()
	if got := strings.TrimSpace(e.ok("images", "-q")); got != "" {
		t.Fatalf("images after kill -9 = %q, want none", got)
	}
	if _, err := os.Stat(filepath.Join(e.root(), "content", "blobs", "sha256", l.LayerDigests[1].Encoded())); err == nil {
		t.Fatal("the interrupted layer is visible as a blob")
	}
	e.ok("system", "check")

	p.setRate(0) // full speed
	e.ok("pull", "-q", ref)
	if !p.sawRange() {
		t.Fatalf("the second pull did not resume with a Range request (saw %q)", p.ranges())
	}
	e.ok("system", "check")
	if got := strings.TrimSpace(e.ok("image", "inspect", "--format", "{{.Id}}", ref)); got != l.ConfigDigest.String() {
		t.Fatalf("pulled ID %s, want %s", got, l.ConfigDigest)
	}
}

func sha(s string) string {
	out, _ := exec.Command("sh", "-c", "printf %s \"$0\" | sha256sum", s).Output()
	return "sha256:" + strings.Fields(string(out))[0]
}

// throttle is a reverse proxy to a registry that slows blob bodies to rate
// bytes per second (0: unlimited) and records Range headers.
type throttle struct {
	target string
	mu     sync.Mutex
	rate   int
	seen   []string
}

func (p *throttle) setRate(r int) { p.mu.Lock(); p.rate = r; p.mu.Unlock() }
func (p *throttle) ranges() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}
func (p *throttle) sawRange() bool {
	for _, r := range p.ranges() {
		if strings.HasPrefix(r, "bytes=") && r != "bytes=0-" {
			return true
		}
	}
	return false
}

func (p *throttle) start(t *testing.T) string {
	u, _ := url.Parse("http://" + p.target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(r *http.Response) error {
		if strings.Contains(r.Request.URL.Path, "/blobs/") {
			r.Body = &slowBody{ReadCloser: r.Body, p: p}
		}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			p.mu.Lock()
			p.seen = append(p.seen, r.Header.Get("Range"))
			p.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		srv.Close()
	})
	return ln.Addr().String()
}

type slowBody struct {
	io.ReadCloser
	p *throttle
}

func (b *slowBody) Read(buf []byte) (int, error) {
	b.p.mu.Lock()
	rate := b.p.rate
	b.p.mu.Unlock()
	if rate > 0 {
		chunk := rate / 20
		if len(buf) > chunk {
			buf = buf[:chunk]
		}
		time.Sleep(50 * time.Millisecond)
	}
	return b.ReadCloser.Read(buf)
}

// TestImagesFiltersAndFormats covers `images` filters and output forms on
// real imports.
func TestImagesFiltersAndFormats(t *testing.T) {
	e := newEnv(t)
	tarball := baseRootfs(t)
	importAt := func(epoch, name string, changes ...string) string {
		args := []string{"import"}
		for _, c := range changes {
			args = append(args, "--change", c)
		}
		args = append(args, tarball, name)
		// The CLI sends its SOURCE_DATE_EPOCH to the daemon as the
		// image's creation time.
		out := strings.TrimSpace(e.okWith([]string{"SOURCE_DATE_EPOCH=" + epoch}, "", args...))
		if !strings.HasPrefix(out, "sha256:") || len(out) < 19 {
			t.Fatalf("import %s printed %q, want an image ID", name, out)
		}
		return out[7:19]
	}
	old := importAt("1600000000", "app/old:1", "LABEL tier=base")
	mid := importAt("1700000000", "app/mid:1", "LABEL tier=web")
	newest := importAt("1750000000", "other/new:1")
	// Reproducible: the same input and time give the same ID.
	if again := importAt("1600000000", "app/old:2", "LABEL tier=base"); again != old {
		t.Fatalf("re-import with the same SOURCE_DATE_EPOCH gave %s, want %s", again, old)
	}
	// Moving app/mid:1 to another image leaves mid dangling.
	e.ok("tag", newest, "app/mid:1")

	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--filter", "dangling=true"}, []string{mid}},
		{[]string{"--filter", "reference=app/*"}, []string{newest, old}},
		{[]string{"--filter", "label=tier=base"}, []string{old}},
		{[]string{"--filter", "label=tier"}, []string{mid, old}},
		{[]string{"--filter", "before=" + newest}, []string{mid, old}},
		{[]string{"--filter", "since=" + old}, []string{newest, mid}},
		{[]string{"other/new"}, []string{newest}},
	} {
		got := strings.Fields(e.ok(append([]string{"images", "-q"}, tt.args...)...))
		if strings.Join(sorted(got), ",") != strings.Join(sorted(tt.want), ",") {
			t.Errorf("images -q %v = %v, want %v", tt.args, got, tt.want)
		}
	}
	out := e.ok("images", "--format", "table {{.Repository}}:{{.Tag}}\t{{.ID}}", "app/old")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "REPOSITORY:TAG") || !strings.Contains(out, "app/old:2") {
		t.Fatalf("images --format table = %q", out)
	}
	if got := e.ok("images", "--format", "{{.Repository}}", "--filter", "dangling=true"); strings.TrimSpace(got) != "<none>" {
		t.Fatalf("dangling image repository = %q, want <none>", got)
	}
	if _, errs, code := e.berth("images", "--format", "{{.Nope"); code == 0 || !strings.Contains(errs, "--format") {
		t.Fatalf("bad template: exit %d %q", code, errs)
	}
	// prune without -a removes only the dangling image.
	e.ok("image", "prune", "-f")
	if got := strings.Fields(e.ok("images", "-q")); len(got) != 2 {
		t.Fatalf("after prune: %v, want 2 images", got)
	}
}

// sorted sorts and de-duplicates (images -q lists each ID once).
func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// TestConcurrentPulls: several berth CLIs pull the same image through one
// daemon at once; all succeed, the store is consistent, and each blob is
// stored once.
func TestConcurrentPulls(t *testing.T) {
	e := newEnv(t)
	reg := testutil.StartRegistry(t)
	big := make([]byte, 8<<20)
	rand.New(rand.NewSource(3)).Read(big)
	l := testutil.WriteOCILayout(t, t.TempDir(), "c", []testutil.Layer{
		{Files: map[string]string{"a": string(big[:4<<20])}, Compression: "gzip"},
		{Files: map[string]string{"b": string(big[4<<20:])}, Compression: "zstd"},
	})
	ref := reg.PushLayout(t, l, "e2e/concurrent")
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := e.command("pull", "-q", ref).CombinedOutput(); err != nil {
				errs <- fmt.Sprintf("%v: %s", err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Errorf("concurrent pull failed: %s", msg)
	}
	e.ok("system", "check")
	if got := strings.TrimSpace(e.ok("images", "-q")); got != l.ConfigDigest.Encoded()[:12] {
		t.Fatalf("images -q = %q, want one image %s", got, l.ConfigDigest.Encoded()[:12])
	}
	if ingests, _ := filepath.Glob(filepath.Join(e.root(), "content", "ingest", "*", "data")); len(ingests) != 0 {
		t.Fatalf("partial downloads left: %v", ingests)
	}
}

// TestSaveLoadPipes: save to stdout and load from stdin (compressed too),
// between two daemons, as `docker save | docker load` is used.
func TestSaveLoadPipes(t *testing.T) {
	e := newEnv(t)
	e.ok("import", baseRootfs(t), "pipe/img:1")
	e2 := newEnv(t)
	script := fmt.Sprintf("%s -H %s save pipe/img:1 | gzip | %s -H %s load", berthBin, e.d.Host, berthBin, e2.d.Host)
	out, err := exec.Command("bash", "-o", "pipefail", "-c", script).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Loaded image: pipe/img:1") {
		t.Fatalf("save | gzip | load: %v\n%s", err, out)
	}
	if a, b := e.ok("image", "inspect", "--format", "{{.Id}}", "pipe/img:1"), e2.ok("image", "inspect", "--format", "{{.Id}}", "pipe/img:1"); a != b {
		t.Fatalf("IDs differ after a piped save/load: %s vs %s", a, b)
	}
	// A load of garbage fails on one line and leaves the store as it was.
	out2, errs, code := e2.d.Berth("this is not a tar archive at all, not even close....", "load")
	if code == 0 {
		t.Fatalf("load of garbage succeeded: %s", out2)
	}
	if msg := strings.TrimSpace(errs); msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("load of garbage: stderr %q, want one line", errs)
	}
	if got := strings.Fields(e2.ok("images", "-q")); len(got) != 1 {
		t.Fatalf("images after a failed load: %v", got)
	}
	e2.ok("system", "check")
}

// dockerConfig is the DOCKER_CONFIG directory the CLIs talking to d use.
func dockerConfig(d *testutil.Daemon) string {
	dir := ""
	for _, kv := range d.Env() {
		if v, ok := strings.CutPrefix(kv, "DOCKER_CONFIG="); ok {
			dir = v
		}
	}
	return dir
}

// TestAutoStart: a CLI that finds no daemon on the default socket starts
// one (in its own session, with the CLI's --root and --config), and CLIs
// that start at the same moment share that one daemon. The CLI offers no
// override of the default socket or exec root (/run/berth), only of the
// root, so the test runs only when nothing uses /run/berth, and stops the
// daemon it caused and removes what it left in /run/berth.
func TestAutoStart(t *testing.T) {
	testutil.RequireRoot(t)
	const runDir, sock = "/run/berth", "/run/berth/berth.sock"
	if _, err := os.Lstat(sock); err == nil {
		t.Skipf("%s exists: a berth daemon may be serving it, and auto-start can only be tested on the default socket", sock)
	}
	if pid := defaultExecRootDaemon(); pid != 0 {
		t.Skipf("berth daemon pid %d uses the default exec root %s: an auto-started daemon would share it", pid, runDir)
	}
	_, err := os.Stat(runDir)
	createdRunDir := os.IsNotExist(err)

	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	var cliEnv []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BERTH_HOST=") && !strings.HasPrefix(kv, "BERTH_ROOT=") && !strings.HasPrefix(kv, "BERTH_CONFIG=") {
			cliEnv = append(cliEnv, kv)
		}
	}
	cliEnv = append(cliEnv, "BERTH_ROOT="+root, "BERTH_CONFIG="+filepath.Join(dir, "config.json"), "DOCKER_CONFIG="+filepath.Join(dir, "docker-config"))
	run := func(args ...string) (string, string, error) {
		cmd := exec.Command(berthBin, args...)
		cmd.Env = cliEnv
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}

	// Whatever happens, stop the daemon this test caused and leave
	// /run/berth as it was.
	t.Cleanup(func() {
		if pid := daemonWithRoot(root); pid != 0 {
			stopPid(t, pid)
		}
		// Its networks outlive it, as containers do.
		if out, err := exec.Command(berthBin, "daemon", "--root", root, "--exec-root", runDir, "--teardown-networks").CombinedOutput(); err != nil {
			t.Errorf("removing the auto-started daemon's networks: %v\n%s", err, out)
		}
		os.Remove(sock)
		if createdRunDir {
			os.RemoveAll(runDir)
		}
	})

	// Three CLIs at once: each succeeds, one of them started the daemon.
	type result struct {
		out, errs string
		err       error
	}
	results := make([]result, 3)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, errs, err := run("images", "-q")
			results[i] = result{out, errs, err}
		}()
	}
	wg.Wait()
	var pids []int
	for i, r := range results {
		if r.err != nil {
			t.Errorf("CLI %d with no daemon running: %v\n%s", i, r.err, r.errs)
		}
		var pid int
		if _, err := fmt.Sscanf(r.errs[strings.Index(r.errs, "(pid ")+1:], "pid %d", &pid); strings.Contains(r.errs, "started the berth daemon") && err == nil {
			pids = append(pids, pid)
		}
	}
	if len(pids) != 1 {
		t.Fatalf("%d CLIs say they started a daemon (%v), want 1:\n%+v", len(pids), pids, results)
	}
	pid := pids[0]
	if got := daemonWithRoot(root); got != pid {
		t.Fatalf("the daemon with root %s is pid %d, the CLI said %d", root, got, pid)
	}
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Errorf("the auto-started daemon's session is %d (%v), want its own (%d)", sid, err, pid)
	}
	if _, err := os.Stat(filepath.Join(root, "daemon.log")); err != nil {
		t.Errorf("the auto-started daemon logs nowhere: %v", err)
	}

	// The daemon outlived the CLIs: the next one uses it, starts nothing.
	if _, errs, err := run("import", baseRootfs(t), "auto/img:1"); err != nil || strings.Contains(errs, "started") {
		t.Fatalf("import through the running daemon: %v %q", err, errs)
	}
	if blobs, _ := filepath.Glob(filepath.Join(root, "content", "blobs", "sha256", "*")); len(blobs) == 0 {
		t.Fatalf("the import stored nothing in the CLI's root %s", root)
	}
	// A CLI that asks for another root is told which one the daemon uses.
	_, errs, err := run("--root", filepath.Join(dir, "other"), "images")
	if err == nil || !strings.Contains(errs, root) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
		t.Fatalf("a CLI with another --root: %v %q, want a one-line error naming %s", err, errs, root)
	}
	stopPid(t, pid)
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("the stopped daemon left %s", sock)
	}
}

// berthDaemons lists the pids of running `berth daemon` processes with
// their arguments.
func berthDaemons() map[int][]string {
	out := map[int][]string{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscanf(d.Name(), "%d", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 1 && filepath.Base(args[0]) == "berth" && slices.Contains(args[1:], "daemon") {
			out[pid] = args
		}
	}
	return out
}

// defaultExecRootDaemon is the pid of a berth daemon using /run/berth, or 0.
func defaultExecRootDaemon() int {
	for pid, args := range berthDaemons() {
		i := slices.Index(args, "--exec-root")
		if i < 0 || i+1 < len(args) && filepath.Clean(args[i+1]) == "/run/berth" {
			return pid
		}
	}
	return 0
}

// daemonWithRoot is the pid of the berth daemon started with root, or 0.
func daemonWithRoot(root string) int {
	for pid, args := range berthDaemons() {
		if i := slices.Index(args, "--root"); i >= 0 && i+1 < len(args) && args[i+1] == root {
			return pid
		}
	}
	return 0
}

// stopPid stops a process this test caused but did not start (so cannot
// wait for): SIGTERM, then SIGKILL after 20s.
func stopPid(t *testing.T, pid int) {
	t.Helper()
	syscall.Kill(pid, syscall.SIGTERM)
	// Gone, or a zombie its new parent has not reaped yet.
	gone := func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		s := string(b)
		return strings.HasPrefix(strings.TrimSpace(s[strings.LastIndex(s, ")")+1:]), "Z")
	}
	deadline := time.Now().Add(20 * time.Second)
	for !gone() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !gone() {
		t.Errorf("daemon pid %d ignored SIGTERM for 20s; killing it", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
