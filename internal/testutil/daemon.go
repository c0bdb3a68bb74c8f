package testutil

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/network"
)

// BuildBerth builds the berth binary (with the seccomp tag, as the
// Makefile does) into dir and returns its path. Call it once from
// TestMain: a build takes seconds.
//
// As `make build` does, it first builds the small helpers (cmd/berth-shim,
// cmd/berth-runtime) and embeds them, so tests run the programs users run.
func BuildBerth(dir string) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for _, h := range []struct {
		name string
		args []string
		env  []string
	}{
		{"berth-shim", []string{"-trimpath", "-ldflags", "-s -w"}, []string{"CGO_ENABLED=0"}},
		{"berth-runtime", []string{"-trimpath", "-tags", "seccomp", "-ldflags", "-s -w"}, nil},
	} {
		tmp := filepath.Join(root, "internal", "embedbin", fmt.Sprintf(".%s.%d", h.name, os.Getpid()))
		cmd := exec.Command("go", append(append([]string{"build"}, h.args...), "-o", tmp, "./cmd/"+h.name)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), h.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building %s: %v\n%s", h.name, err, out)
		}
		// Renamed into place so a concurrent build never embeds half a file.
		if err := os.Rename(tmp, filepath.Join(root, "internal", "embedbin", h.name)); err != nil {
			os.Remove(tmp)
			return "", err
		}
	}
	bin := filepath.Join(dir, "berth")
	cmd := exec.Command("go", "build", "-tags", "seccomp,embedbin", "-o", bin, "./cmd/berth")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building berth: %v\n%s", err, out)
	}
	return bin, nil
}

// Daemon is a berth daemon a test started, with its own root, exec root
// and socket under the test's temporary directory.
type Daemon struct {
	Bin      string
	Root     string
	ExecRoot string
	Sock     string
	// Host is the socket as -H and DOCKER_HOST take it.
	Host string

	t   testing.TB
	cmd *exec.Cmd
	// extra are the flags of the last start, reused when cleanup has to
	// bring a killed daemon back (e.g. the same --runtime).
	extra []string
	log   *syncBuffer
	// exited is closed when the daemon process is gone.
	exited chan struct{}
}

// StartDaemon starts `berth daemon` with fresh directories and waits until
// its API answers. extra flags are appended (e.g. "--runtime", "runc").
// The daemon, every container it started and their mounts are cleaned up
// when the test ends.
func StartDaemon(t testing.TB, bin string, extra ...string) *Daemon {
	t.Helper()
	RequireRoot(t)
	dir := t.TempDir()
	d := &Daemon{Bin: bin, Root: filepath.Join(dir, "root"), ExecRoot: filepath.Join(dir, "run"), Sock: filepath.Join(dir, "berth.sock"), t: t}
	d.Host = "unix://" + d.Sock
	d.start(extra...)
	t.Cleanup(d.cleanup)
	return d
}

func (d *Daemon) start(extra ...string) {
	d.t.Helper()
	d.extra = extra
	args := append(d.baseArgs(), "--log-level", "debug")
	args = append(args, extra...)
	d.cmd = exec.Command(d.Bin, args...)
	if d.log == nil {
		d.log = &syncBuffer{}
	}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("starting the daemon: %v", err)
	}
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, ch chan struct{}) { _ = cmd.Wait(); close(ch) }(d.cmd, d.exited)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if d.ping() {
			return
		}
		select {
		case <-d.exited:
			d.t.Fatalf("the daemon exited at start:\n%s", d.log.tail(40))
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("the daemon did not answer within 20s:\n%s", d.log.tail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// baseArgs run the daemon on the test's directories. The config file is a
// private path (absent unless a test writes it) so that the machine's
// /etc/berth/config.json never leaks into a test; a test's own --config
// in extra comes later and wins.
func (d *Daemon) baseArgs() []string {
	return []string{"daemon", "--root", d.Root, "--exec-root", d.ExecRoot, "-H", d.Host,
		"--config", filepath.Join(filepath.Dir(d.Root), "config.json")}
}

func (d *Daemon) ping() bool {
	c := d.HTTPClient()
	resp, err := c.Get("http://berth/_ping")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// HTTPClient talks to the daemon's socket.
func (d *Daemon) HTTPClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.Sock)
		},
	}}
}

// Kill9 kills the daemon with SIGKILL and waits for it to be gone;
// containers keep running under their shims.
func (d *Daemon) Kill9() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

// Stop stops the daemon with SIGTERM.
func (d *Daemon) Stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		d.Kill9()
	}
}

// Restart starts the daemon again on the same directories.
func (d *Daemon) Restart(extra ...string) {
	d.t.Helper()
	d.start(extra...)
}

// Log is what the daemon printed so far.
func (d *Daemon) Log() string { return d.log.String() }

// Env is the environment for CLIs talking to this daemon: BERTH_HOST for
// berth, DOCKER_HOST and a private DOCKER_CONFIG for the docker CLI.
func (d *Daemon) Env() []string {
	return append(os.Environ(), "BERTH_HOST="+d.Host, "DOCKER_HOST="+d.Host, "DOCKER_CONFIG="+filepath.Join(filepath.Dir(d.Root), "docker-config"))
}

// Berth runs the berth CLI against the daemon and returns stdout, stderr
// and the exit code.
func (d *Daemon) Berth(stdin string, args ...string) (string, string, int) {
	return d.run(d.Bin, stdin, args...)
}

// Docker runs the real docker CLI against the daemon.
func (d *Daemon) Docker(stdin string, args ...string) (string, string, int) {
	return d.run("/usr/local/bin/docker", stdin, args...)
}

func (d *Daemon) run(bin, stdin string, args ...string) (string, string, int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = d.Env()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return out.String(), errb.String(), code
}

// cleanup removes every container (killing what runs), stops the daemon,
// and makes sure no shim, container process or mount is left.
func (d *Daemon) cleanup() {
	select {
	case <-d.exited:
		// A test killed it; bring it back to remove the containers.
		d.startQuiet()
	default:
	}
	if d.ping() {
		out, _, _ := d.Berth("", "ps", "-aq", "--no-trunc")
		for _, id := range strings.Fields(out) {
			d.Berth("", "rm", "-f", "-v", id)
		}
	}
	d.Stop()
	// Shims whose containers could not be removed: kill them and their
	// containers' processes.
	out, _ := exec.Command("pgrep", "-f", "shim --id .* --state-dir "+d.ExecRoot).Output()
	for _, p := range strings.Fields(string(out)) {
		_ = exec.Command("kill", "-9", p).Run()
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (strings.HasPrefix(f[1], d.ExecRoot+"/") || strings.HasPrefix(f[1], d.Root+"/")) {
			_ = syscall.Unmount(f[1], syscall.MNT_DETACH)
		}
	}
	// The daemon's networks outlive it, as containers do: remove them,
	// with their bridges, rules and namespaces.
	d.destroyNetworks()
	// The parent cgroup berth puts containers under goes when no daemon
	// uses it any more (rmdir fails on a non-empty one, as it should).
	for _, dir := range []string{"/sys/fs/cgroup/unified/berth", "/sys/fs/cgroup/berth"} {
		_ = syscall.Rmdir(dir)
	}
	if ctls, err := filepath.Glob("/sys/fs/cgroup/*/berth"); err == nil {
		for _, dir := range ctls {
			_ = syscall.Rmdir(dir)
		}
	}
	if d.t.Failed() {
		d.t.Logf("daemon log (tail):\n%s", d.log.tail(60))
	}
}

func (d *Daemon) startQuiet() {
	d.cmd = exec.Command(d.Bin, append(d.baseArgs(), d.extra...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if d.cmd.Start() != nil {
		return
	}
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, ch chan struct{}) { _ = cmd.Wait(); close(ch) }(d.cmd, d.exited)
	for i := 0; i < 500 && !d.ping(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// destroyNetworks removes every network the daemon made, and checks that
// nothing of them is left on the host.
func (d *Daemon) destroyNetworks() {
	root := filepath.Join(d.Root, "network")
	if _, err := os.Stat(root); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := network.New(ctx, network.Config{Root: root, ExecRoot: filepath.Join(d.ExecRoot, "netns")})
	if err != nil {
		d.t.Errorf("opening the daemon's networks to remove them: %v", err)
		return
	}
	if err := m.Destroy(ctx); err != nil {
		d.t.Errorf("removing the daemon's networks: %v", err)
	}
	sum := sha256.Sum256([]byte(root))
	tag := hex.EncodeToString(sum[:])[:6]
	for _, table := range []string{"filter", "nat"} {
		out, _ := exec.Command("iptables-save", "-t", table).Output()
		if strings.Contains(string(out), tag) {
			d.t.Errorf("iptables rules of the daemon (tag %s) are left in table %s:\n%s", tag, table, out)
		}
	}
}
