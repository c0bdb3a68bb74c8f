package dockerapi

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

const dockerCLI = "/usr/local/bin/docker"

// dockerClient runs the real docker CLI against a berth API socket, with
// its own config directory (credentials) so nothing leaks between tests.
type dockerClient struct {
	t      *testing.T
	sock   string
	config string
}

func (d *dockerClient) run(stdin []byte, args ...string) (string, string, error) {
	d.t.Helper()
	// No docker command of these tests takes long; a hang fails fast.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerCLI, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+d.sock, "DOCKER_CONFIG="+d.config, "DOCKER_CLI_HINTS=false")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	d.t.Logf("docker %s: %v", strings.Join(args, " "), err)
	return out.String(), errb.String(), err
}

// ok runs docker and fails the test unless it succeeds; it returns stdout.
func (d *dockerClient) ok(args ...string) string {
	d.t.Helper()
	out, errOut, err := d.run(nil, args...)
	if err != nil {
		d.t.Fatalf("docker %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// startDocker serves a fresh Server on a unix socket until the test ends.
func startDocker(t *testing.T) (*Server, *dockerClient) {
	t.Helper()
	requireDocker(t)
	s := newServer(t)
	return s, serveDocker(t, s)
}

// requireDocker skips the test unless the docker CLI can run it.
func requireDocker(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skipf("docker CLI not installed at %s", dockerCLI)
	}
}

// serveDocker serves s on a unix socket until the test ends, for the
// docker CLI.
func serveDocker(t *testing.T, s *Server) *dockerClient {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "berth.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &dockerClient{t: t, sock: sock, config: t.TempDir()}
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, got)
		}
	}
}

func TestDockerCLIImagesAndVolumes(t *testing.T) {
	_, d := startDocker(t)

	if got := strings.TrimSpace(d.ok("version", "--format", "{{.Server.APIVersion}} {{.Server.Version}} {{.Client.APIVersion}}")); got != "1.50 test 1.50" {
		t.Errorf("docker version = %q, want %q", got, "1.50 test 1.50")
	}
	if got := strings.TrimSpace(d.ok("info", "--format", "{{.Driver}} {{.CgroupDriver}} {{.OSType}} {{.Images}}")); got != "overlayfs cgroupfs linux 0" {
		t.Errorf("docker info = %q", got)
	}
	mustContain(t, "docker info", d.ok("info"), "Server Version: test", "Storage Driver: overlayfs", "Logging Driver: json-file", "Default Runtime: runc")

	// import a busybox root file system.
	dir := t.TempDir()
	rootfs := testutil.BusyboxRootfs(t, filepath.Join(dir, "rootfs"))
	tarball := filepath.Join(dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", rootfs, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	id := strings.TrimSpace(d.ok("import", "-c", `CMD ["/bin/sh"]`, "-m", "made by test", tarball, "bb:1"))
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("docker import printed %q, want an image ID", id)
	}
	mustContain(t, "docker images", d.ok("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"), "bb:1 "+id)
	if got := strings.TrimSpace(d.ok("image", "inspect", "--format", "{{.Id}} {{json .Config.Cmd}} {{.Os}}", "bb:1")); got != id+` ["/bin/sh"] linux` {
		t.Errorf("image inspect = %q", got)
	}
	d.ok("tag", "bb:1", "bb:2")
	mustContain(t, "docker image ls", d.ok("image", "ls"), "bb           1", "bb           2")
	mustContain(t, "docker history", d.ok("history", "--format", "{{.Comment}}|{{.CreatedBy}}", "bb:1"), "made by test")

	// save | load round trip.
	archive := filepath.Join(dir, "bb.tar")
	d.ok("save", "-o", archive, "bb:1")
	out := d.ok("rmi", "bb:1", "bb:2")
	mustContain(t, "docker rmi", out, "Untagged: bb:1", "Untagged: bb:2", "Deleted: "+id)
	if out := d.ok("images", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("images after rmi: %q", out)
	}
	mustContain(t, "docker load", d.ok("load", "-i", archive), "Loaded image: bb:1")
	if got := strings.TrimSpace(d.ok("image", "inspect", "--format", "{{.Id}}", "bb:1")); got != id {
		t.Errorf("loaded image ID %s, want %s", got, id)
	}
	_, errOut, err := d.run(nil, "image", "inspect", "nosuch:1")
	if err == nil || !strings.Contains(strings.ToLower(errOut), "no such image") {
		t.Errorf("inspect of a missing image: err %v, stderr %q", err, errOut)
	}

	// volumes
	if got := strings.TrimSpace(d.ok("volume", "create", "--label", "app=web", "v1")); got != "v1" {
		t.Errorf("volume create printed %q", got)
	}
	anon := strings.TrimSpace(d.ok("volume", "create"))
	if len(anon) != 64 {
		t.Errorf("volume create without a name printed %q", anon)
	}
	mustContain(t, "volume ls", d.ok("volume", "ls", "--format", "{{.Driver}} {{.Name}}"), "local v1", "local "+anon)
	if got := d.ok("volume", "ls", "-q", "--filter", "label=app=web"); strings.TrimSpace(got) != "v1" {
		t.Errorf("volume ls --filter label = %q", got)
	}
	mp := strings.TrimSpace(d.ok("volume", "inspect", "--format", "{{.Mountpoint}}", "v1"))
	if fi, err := os.Stat(mp); err != nil || !fi.IsDir() {
		t.Errorf("volume mountpoint %q: %v", mp, err)
	}
	os.WriteFile(filepath.Join(mp, "f"), bytes.Repeat([]byte("x"), 5000), 0o644)
	mustContain(t, "system df", d.ok("system", "df"), "Images", "Local Volumes", "Build Cache")
	mustContain(t, "system df -v", d.ok("system", "df", "-v"), "v1", "5kB", "bb")
	// Named volumes survive a plain prune (API 1.42+), not -a.
	if out := d.ok("volume", "prune", "-f"); strings.Contains(out, "v1") {
		t.Errorf("volume prune removed a named volume: %s", out)
	}
	mustContain(t, "volume prune -a", d.ok("volume", "prune", "-a", "-f"), "v1", anon)
	d.ok("volume", "create", "v2")
	d.ok("volume", "rm", "v2")
	if _, errOut, err := d.run(nil, "volume", "rm", "v2"); err == nil || !strings.Contains(errOut, "no such volume") {
		t.Errorf("rm of a removed volume: %v %q", err, errOut)
	}

	// image prune -a removes what is left.
	mustContain(t, "image prune -a", d.ok("image", "prune", "-a", "-f"), "untagged: bb:1", "deleted: "+id, "Total reclaimed space")
}

func TestDockerCLIRegistry(t *testing.T) {
	_, d := startDocker(t)
	reg := testutil.StartRegistry(t, testutil.WithBasicAuth("alice", "s3cret"))

	// login checks the credentials through the daemon; the CLI stores them
	// and sends them with each push and pull (X-Registry-Auth), the only
	// way berth's daemon gets them here.
	if _, errOut, err := d.run([]byte("wrong\n"), "login", "-u", "alice", "--password-stdin", reg.Addr); err == nil {
		t.Errorf("login with a wrong password succeeded: %s", errOut)
	}
	out, errOut, err := d.run([]byte("s3cret\n"), "login", "-u", "alice", "--password-stdin", reg.Addr)
	if err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login: %v\n%s\n%s", err, out, errOut)
	}

	dir := t.TempDir()
	rootfs := testutil.BusyboxRootfs(t, filepath.Join(dir, "rootfs"))
	tarball := filepath.Join(dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", rootfs, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	name := reg.Addr + "/tools/bb:1"
	id := strings.TrimSpace(d.ok("import", tarball, name))

	out = d.ok("push", name)
	mustContain(t, "docker push", out, "The push refers to repository ["+reg.Addr+"/tools/bb]", "Pushed", "1: digest: sha256:")
	pushed := regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
	d.ok("rmi", name)

	out = d.ok("pull", name)
	mustContain(t, "docker pull", out, "1: Pulling from tools/bb", "Pull complete", "Digest: "+pushed[1], "Status: Downloaded newer image for "+name)
	if got := strings.TrimSpace(d.ok("image", "inspect", "--format", "{{.Id}}", name)); got != id {
		t.Errorf("pulled image ID %s, want %s", got, id)
	}
	mustContain(t, "docker pull again", d.ok("pull", name), "Status: Image is up to date for "+name)
	mustContain(t, "docker images --digests", d.ok("images", "--digests"), pushed[1])

	// Without credentials the registry refuses, and the CLI says so.
	d.ok("logout", reg.Addr)
	_, errOut, err = d.run(nil, "pull", reg.Addr+"/tools/bb:1")
	if err == nil {
		t.Errorf("pull without credentials succeeded")
	}
	mustContain(t, "pull without credentials", errOut, "pull access denied for "+reg.Addr+"/tools/bb")
	_, errOut, err = d.run(nil, "pull", reg.Addr+"/tools/nosuch:1")
	if err == nil {
		t.Errorf("pull of a missing image succeeded: %s", errOut)
	}
}
