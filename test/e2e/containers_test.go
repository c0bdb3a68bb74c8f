package e2e

// The container suite: every test here runs twice, once with berth's
// embedded runtime and once with Debian's runc, against a daemon of its
// own, through the berth CLI, the real docker CLI and the raw API.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/berth-dev/berth/internal/testutil"
)

var (
	baseTarOnce sync.Once
	baseTar     string
	baseTarErr  error
)

// busyboxTar is the offline base image tarball from scripts/mkbase.sh,
// made once per test binary.
func busyboxTar(t *testing.T) string {
	baseTarOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-base-")
		if err != nil {
			baseTarErr = err
			return
		}
		baseTar = filepath.Join(dir, "busybox.tar")
		out, err := exec.Command("bash", "../../scripts/mkbase.sh", baseTar).CombinedOutput()
		if err != nil {
			baseTarErr = fmt.Errorf("mkbase.sh: %v\n%s", err, out)
		}
	})
	if baseTarErr != nil {
		t.Fatal(baseTarErr)
	}
	return baseTar
}

// ctrDaemon starts a daemon with the given default runtime and the
// busybox image imported as busybox:latest.
func ctrDaemon(t *testing.T, runtime string) *testutil.Daemon {
	t.Helper()
	if runtime == "runc" {
		if _, err := exec.LookPath("runc"); err != nil {
			t.Skip("runc is not installed (apt-get install runc)")
		}
	}
	d := testutil.StartDaemon(t, berthBin, "--runtime", runtime)
	mustB(t, d, "", "import", busybox(t), "busybox:latest")
	return d
}

func busybox(t *testing.T) string { return busyboxTar(t) }

// mustB runs the berth CLI and fails the test on a non-zero exit.
func mustB(t *testing.T, d *testutil.Daemon, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := d.Berth(stdin, args...)
	if code != 0 {
		t.Fatalf("berth %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// mustD runs the docker CLI and fails the test on a non-zero exit.
func mustD(t *testing.T, d *testutil.Daemon, args ...string) string {
	t.Helper()
	out, errOut, code := d.Docker("", args...)
	if code != 0 {
		t.Fatalf("docker %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func inspectField(t *testing.T, d *testutil.Daemon, ref, tmpl string) string {
	t.Helper()
	return strings.TrimSpace(mustB(t, d, "", "inspect", "-f", tmpl, ref))
}

var runtimes = []string{"berth", "runc"}

func forRuntimes(t *testing.T, fn func(t *testing.T, d *testutil.Daemon)) {
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) { fn(t, ctrDaemon(t, rt)) })
	}
}

func TestContainerRunBasics(t *testing.T) {
	forRuntimes(t, func(t *testing.T, d *testutil.Daemon) {
		if got := mustB(t, d, "", "run", "--rm", "busybox", "echo", "hello"); got != "hello\n" {
			t.Fatalf("run echo: got %q, want hello", got)
		}
		// stdout and stderr stay apart.
		out, errOut, code := d.Berth("", "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
		if out != "out\n" || errOut != "err\n" || code != 3 {
			t.Fatalf("streams: got stdout %q stderr %q exit %d, want out, err, 3", out, errOut, code)
		}
		// Docker's exit codes for commands that cannot run.
		_, errOut, code = d.Berth("", "run", "--rm", "busybox", "nosuchcmd")
		if code != 127 || !strings.Contains(errOut, "nosuchcmd") {
			t.Fatalf("missing command: exit %d, stderr %q; want 127 naming the command", code, errOut)
		}
		_, errOut, code = d.Berth("", "run", "--rm", "busybox", "/etc/passwd")
		if code != 126 {
			t.Fatalf("not executable: exit %d (%s), want 126", code, errOut)
		}
		// stdin.
		if got := mustB(t, d, "piped in\n", "run", "--rm", "-i", "busybox", "cat"); got != "piped in\n" {
			t.Fatalf("run -i cat: got %q", got)
		}
		// A container killed by SIGKILL exits 137.
		id := strings.TrimSpace(mustB(t, d, "", "run", "-d", "busybox", "sleep", "100"))
		mustB(t, d, "", "kill", id)
		if got := strings.TrimSpace(mustB(t, d, "", "wait", id)); got != "137" {
			t.Fatalf("wait after kill: got %s, want 137", got)
		}
		if got := inspectField(t, d, id, "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}"); got != "exited 137 false" {
			t.Fatalf("inspect after kill: %s", got)
		}
	})
}

func TestContainerIsolation(t *testing.T) {
	forRuntimes(t, func(t *testing.T, d *testutil.Daemon) {
		out := mustB(t, d, "", "run", "--rm", "--name", "iso", "busybox", "sh", "-c",
			"echo pid1=$$; for n in pid mnt uts ipc net; do echo $n=$(readlink /proc/self/ns/$n); done; ls /sys/class/net; hostname")
		for _, ns := range []string{"pid", "mnt", "uts", "ipc", "net"} {
			host, err := os.Readlink("/proc/self/ns/" + ns)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, ns+"=") || strings.Contains(out, ns+"="+host) {
				t.Errorf("namespace %s: container shares the host's %s\n%s", ns, host, out)
			}
		}
		if !strings.Contains(out, "pid1=1\n") {
			t.Errorf("the command is not PID 1:\n%s", out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if lines[len(lines)-2] != "lo" {
			t.Errorf("--network none should leave only lo, got %q", lines[len(lines)-2])
		}
		// --network host shares the host's network namespace.
		hostNet, _ := os.Readlink("/proc/self/ns/net")
		if got := mustB(t, d, "", "run", "--rm", "--network", "host", "busybox", "readlink", "/proc/self/ns/net"); strings.TrimSpace(got) != hostNet {
			t.Errorf("--network host: got %s, want %s", got, hostNet)
		}
	})
}

func TestContainerImageConfig(t *testing.T) {
	forRuntimes(t, func(t *testing.T, d *testutil.Daemon) {
		mustB(t, d, "", "import",
			"--change", "ENV GREETING=hi FROM_IMAGE=1",
			"--change", "WORKDIR /tmp",
			"--change", "USER nobody",
			"--change", `ENTRYPOINT ["sh", "-c"]`,
			"--change", `CMD ["echo $GREETING from $(pwd) as $(id -u)"]`,
			busybox(t), "configured:1")
		if got := mustB(t, d, "", "run", "--rm", "configured:1"); got != "hi from /tmp as 65534\n" {
			t.Fatalf("image config: got %q", got)
		}
		// Flags override the image.
		got := mustB(t, d, "", "run", "--rm", "-u", "0", "-w", "/", "-e", "GREETING=yo", "configured:1", "echo $GREETING $FROM_IMAGE $(pwd) $(id -u)")
		if got != "yo 1 / 0\n" {
			t.Fatalf("overrides: got %q", got)
		}
		if got := mustB(t, d, "", "run", "--rm", "--entrypoint", "env", "configured:1"); !strings.Contains(got, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n") {
			t.Fatalf("--entrypoint with default PATH: got %q", got)
		}
	})
}

// cgroupFile reads a file of the container's cgroup on the host, v1 or v2.
func cgroupFile(t *testing.T, id, v1ctl, v1file, v2file string) string {
	t.Helper()
	for _, p := range []string{
		filepath.Join("/sys/fs/cgroup", v1ctl, "berth", id, v1file),
		filepath.Join("/sys/fs/cgroup/berth", id, v2file),
	} {
		if b, err := os.ReadFile(p); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatalf("no cgroup file %s/%s for %s", v1ctl, v1file, id)
	return ""
}

func TestContainerLimits(t *testing.T) {
	forRuntimes(t, func(t *testing.T, d *testutil.Daemon) {
		// A memory hog is OOM-killed: 137 and OOMKilled.
		_, _, code := d.Berth("", "run", "--name", "hog", "-m", "32m", "busybox", "tail", "/dev/zero")
		if code != 137 {
			t.Fatalf("memory hog: exit %d, want 137", code)
		}
		if got := inspectField(t, d, "hog", "{{.State.OOMKilled}} {{.State.ExitCode}}"); got != "true 137" {
			t.Fatalf("memory hog: OOMKilled ExitCode = %s, want true 137", got)
		}
		// A fork bomb is stopped at --pids-limit: the 21st process cannot
		// be made (busybox sh then gives up), while 19 forks succeed.
		_, errOut, code := d.Berth("", "run", "--rm", "--pids-limit", "20", "busybox", "sh", "-c", "for i in $(seq 60); do sleep 5 & echo $i; done")
		if code == 0 || !strings.Contains(errOut, "fork") {
			t.Errorf("fork bomb under --pids-limit 20: exit %d, stderr %q; want a failed fork", code, errOut)
		}
		out, _, _ := d.Berth("", "run", "--rm", "--pids-limit", "20", "busybox", "sh", "-c", "for i in $(seq 60); do sleep 5 & echo $i; done")
		if n := len(strings.Fields(out)); n < 15 || n > 19 {
			t.Errorf("fork bomb under --pids-limit 20: %d forks succeeded, want 15-19", n)
		}
		bomb := strings.TrimSpace(mustB(t, d, "", "run", "-d", "--pids-limit", "20", "busybox", "sleep", "60"))
		if max := cgroupFile(t, bomb, "pids", "pids.max", "pids.max"); max != "20" {
			t.Errorf("--pids-limit 20: pids.max %q", max)
		}
		mustB(t, d, "", "rm", "-f", bomb)
		// CPU and memory limits reach the cgroup.
		id := strings.TrimSpace(mustB(t, d, "", "run", "-d", "--cpus", "0.5", "--cpu-shares", "512", "-m", "64m", "busybox", "sleep", "60"))
		if q := cgroupFile(t, id, "cpu", "cpu.cfs_quota_us", "cpu.max"); q != "50000" && !strings.HasPrefix(q, "50000 ") {
			t.Errorf("--cpus 0.5: cpu quota %q, want 50000", q)
		}
		if m := cgroupFile(t, id, "memory", "memory.limit_in_bytes", "memory.max"); m != "67108864" {
			t.Errorf("-m 64m: memory limit %q", m)
		}
		// update changes them live.
		mustB(t, d, "", "update", "-m", "96m", "--memory-swap", "-1", id)
		if m := cgroupFile(t, id, "memory", "memory.limit_in_bytes", "memory.max"); m != "100663296" {
			t.Errorf("update -m 96m: memory limit %q", m)
		}
		mustB(t, d, "", "rm", "-f", id)
	})
}

func TestContainerSecurityDefaults(t *testing.T) {
	forRuntimes(t, func(t *testing.T, d *testutil.Daemon) {
		// root in the container may chown by default; not without caps.
		mustB(t, d, "", "run", "--rm", "busybox", "chown", "65534", "/tmp")
		if _, _, code := d.Berth("", "run", "--rm", "--cap-drop", "ALL", "busybox", "chown", "65534", "/tmp"); code == 0 {
			t.Error("chown succeeded with --cap-drop ALL")
		}
		// The default seccomp profile refuses unshare(CLONE_NEWUSER).
		_, errOut, code := d.Berth("", "run", "--rm", "busybox", "unshare", "-U", "true")
		if code == 0 || !strings.Contains(errOut, "Operation not permitted") {
			t.Errorf("unshare -U under the default profile: exit %d %q, want EPERM", code, errOut)
		}
		mustB(t, d, "", "run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "unshare", "-U", "true")
		// Read-only root.
		if _, _, code := d.Berth("", "run", "--rm", "--read-only", "busybox", "touch", "/x"); code == 0 {
			t.Error("--read-only: writing to / succeeded")
		}
		mustB(t, d, "", "run", "--rm", "--read-only", "--tmpfs", "/scratch", "busybox", "touch", "/scratch/x")
		// Masked /proc paths and no-new-privileges.
		if got := mustB(t, d, "", "run", "--rm", "busybox", "sh", "-c", "wc -c < /proc/timer_list"); strings.TrimSpace(got) != "0" {
			t.Errorf("/proc/timer_list is not masked: %s bytes", got)
		}
		if got := mustB(t, d, "", "run", "--rm", "--security-opt", "no-new-privileges", "busybox", "grep", "NoNewPrivs", "/proc/self/status"); !strings.Contains(got, "1") {
			t.Errorf("no-new-privileges: %q", got)
		}
		// /dev/shm is 64m by default.
		if got := mustB(t, d, "", "run", "--rm", "busybox", "df", "-k", "/dev/shm"); !strings.Contains(got, "65536") {
			t.Errorf("/dev/shm size: %s", got)
		}
	})
}

func TestContainerVolumes(t *testing.T) {
	forRuntimes(t, func(t *testing.T, d *testutil.Daemon) {
		mustB(t, d, "", "run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f")
		if got := mustB(t, d, "", "run", "--rm", "-v", "data:/data:ro", "busybox", "cat", "/data/f"); got != "kept\n" {
			t.Fatalf("named volume: got %q", got)
		}
		if _, _, code := d.Berth("", "run", "--rm", "-v", "data:/data:ro", "busybox", "touch", "/data/g"); code == 0 {
			t.Error("writing to a :ro volume succeeded")
		}
		host := t.TempDir()
		if err := os.WriteFile(filepath.Join(host, "in"), []byte("from host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := mustB(t, d, "", "run", "--rm", "--mount", "type=bind,source="+host+",target=/h", "busybox", "sh", "-c", "cat /h/in; echo back > /h/out"); got != "from host\n" {
			t.Fatalf("bind mount: got %q", got)
		}
		if b, _ := os.ReadFile(filepath.Join(host, "out")); string(b) != "back\n" {
			t.Fatalf("bind mount write: host sees %q", b)
		}
		// In use volumes cannot be removed; rm -v removes anonymous ones.
		id := strings.TrimSpace(mustB(t, d, "", "create", "-v", "data:/data", "-v", "/anon", "busybox", "true"))
		if _, errOut, code := d.Berth("", "volume", "rm", "data"); code == 0 || !strings.Contains(errOut, "in use") {
			t.Errorf("volume rm of a volume in use: exit %d %q", code, errOut)
		}
		anon := inspectField(t, d, id, `{{range .Mounts}}{{if eq .Destination "/anon"}}{{.Name}}{{end}}{{end}}`)
		if anon == "" {
			t.Fatal("no anonymous volume for -v /anon")
		}
		mustB(t, d, "", "rm", "-v", id)
		if out := mustB(t, d, "", "volume", "ls", "-q"); strings.Contains(out, anon) || !strings.Contains(out, "data") {
			t.Errorf("after rm -v: volumes %q, want data kept and %s gone", out, anon)
		}
	})
}

func TestContainerLogs(t *testing.T) {
	forRuntimes(t, func(t *testing.T, d *testutil.Daemon) {
		id := strings.TrimSpace(mustB(t, d, "", "run", "-d", "--log-opt", "max-size=2k", "--log-opt", "max-file=2", "busybox",
			"sh", "-c", "for i in $(seq 1 400); do echo line-$i; done; echo err-line >&2"))
		mustB(t, d, "", "wait", id)
		out := mustB(t, d, "", "logs", "--tail", "2", id)
		if out != "line-400\nerr-line\n" {
			// stderr comes on the CLI's stderr; with both captured it is
			// split: check stdout alone.
			if !strings.HasSuffix(out, "line-400\n") {
				t.Fatalf("logs --tail 2: %q", out)
			}
		}
		// Rotation kept the files bounded.
		matches, _ := filepath.Glob(filepath.Join(d.Root, "containers", id, id+"-json.log*"))
		if len(matches) == 0 || len(matches) > 2 {
			t.Fatalf("log files after rotation: %v, want 1-2", matches)
		}
		var total int64
		for _, m := range matches {
			fi, _ := os.Stat(m)
			total += fi.Size()
		}
		if total > 6*1024 {
			t.Errorf("rotated logs use %d bytes, want at most about 2 x 2k", total)
		}
		// Follow sees new lines and ends when the container stops.
		id = strings.TrimSpace(mustB(t, d, "", "run", "-d", "busybox", "sh", "-c", "for i in 1 2 3; do echo f$i; sleep 0.3; done"))
		if got := mustB(t, d, "", "logs", "-f", id); got != "f1\nf2\nf3\n" {
			t.Fatalf("logs -f: %q", got)
		}
		if got := mustB(t, d, "", "logs", "-t", id); !strings.Contains(got, "Z f1") {
			t.Errorf("logs -t: %q", got)
		}
	})
}

func TestContainerExecCpPauseTop(t *testing.T) {
	forRuntimes(t, func(t *testing.T, d *testutil.Daemon) {
		id := strings.TrimSpace(mustB(t, d, "", "run", "-d", "--name", "svc", "busybox", "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done"))
		if got := mustB(t, d, "", "exec", "-e", "X=1", "-w", "/tmp", "svc", "sh", "-c", "echo $X $(pwd)"); got != "1 /tmp\n" {
			t.Fatalf("exec: %q", got)
		}
		if _, _, code := d.Berth("", "exec", "svc", "sh", "-c", "exit 4"); code != 4 {
			t.Errorf("exec exit code: %d, want 4", code)
		}
		if _, _, code := d.Berth("", "exec", "svc", "nosuch"); code != 127 {
			t.Errorf("exec of a missing command: exit %d, want 127", code)
		}
		if got := mustB(t, d, "in\n", "exec", "-i", "-u", "nobody", "svc", "sh", "-c", "cat; id -u"); got != "in\n65534\n" {
			t.Errorf("exec -i -u: %q", got)
		}
		// cp both ways.
		src := filepath.Join(t.TempDir(), "up.txt")
		os.WriteFile(src, []byte("uploaded\n"), 0o644)
		mustB(t, d, "", "cp", src, "svc:/tmp/")
		if got := mustB(t, d, "", "exec", "svc", "cat", "/tmp/up.txt"); got != "uploaded\n" {
			t.Errorf("cp into the container: %q", got)
		}
		dst := t.TempDir()
		mustB(t, d, "", "cp", "svc:/etc/passwd", dst)
		if b, _ := os.ReadFile(filepath.Join(dst, "passwd")); !strings.Contains(string(b), "root:x:0:0") {
			t.Errorf("cp from the container: %q", b)
		}
		// top.
		if got := mustB(t, d, "", "top", "svc"); !strings.Contains(got, "sh -c") {
			t.Errorf("top: %q", got)
		}
		// pause stops progress; unpause resumes it.
		mustB(t, d, "", "pause", "svc")
		if got := inspectField(t, d, "svc", "{{.State.Status}} {{.State.Paused}}"); got != "paused true" {
			t.Fatalf("after pause: %s", got)
		}
		c1 := mustB(t, d, "", "cp", "svc:/tmp/count", "-")
		time.Sleep(500 * time.Millisecond)
		c2 := mustB(t, d, "", "cp", "svc:/tmp/count", "-")
		if c1 != c2 {
			t.Errorf("a paused container made progress")
		}
		if _, errOut, code := d.Berth("", "exec", "svc", "true"); code == 0 || !strings.Contains(errOut, "paused") {
			t.Errorf("exec into a paused container: exit %d %q", code, errOut)
		}
		mustB(t, d, "", "unpause", "svc")
		// rename, restart, stop and rm.
		mustB(t, d, "", "rename", "svc", "svc2")
		mustB(t, d, "", "restart", "-t", "1", "svc2")
		if got := inspectField(t, d, id, "{{.Name}} {{.State.Status}}"); got != "/svc2 running" {
			t.Errorf("after rename and restart: %s", got)
		}
		if _, errOut, code := d.Berth("", "rm", "svc2"); code == 0 || !strings.Contains(errOut, "stop the container") {
			t.Errorf("rm of a running container: exit %d %q", code, errOut)
		}
		mustB(t, d, "", "stop", "-t", "1", "svc2")
		if _, errOut, code := d.Berth("", "exec", "svc2", "true"); code == 0 || !strings.Contains(errOut, "not running") {
			t.Errorf("exec into a stopped container: exit %d %q", code, errOut)
		}
		mustB(t, d, "", "rm", "svc2")
		if _, errOut, code := d.Berth("", "inspect", "svc2"); code == 0 || !strings.Contains(strings.ToLower(errOut), "no such") {
			t.Errorf("inspect after rm: exit %d %q", code, errOut)
		}
	})
}

func TestContainerBadInput(t *testing.T) {
	d := ctrDaemon(t, "berth")
	mustB(t, d, "", "create", "--name", "taken", "busybox", "true")
	if _, errOut, code := d.Berth("", "create", "--name", "taken", "busybox", "true"); code != 125 || !strings.Contains(errOut, "already in use") {
		t.Errorf("name conflict: exit %d %q", code, errOut)
	}
	if _, errOut, code := d.Berth("", "start", "nosuchcontainer"); code == 0 || !strings.Contains(errOut, "No such container") {
		t.Errorf("unknown container: exit %d %q", code, errOut)
	}
	// Malformed API bodies get 400 and Docker's error body.
	c := d.HTTPClient()
	for _, body := range []string{"{", `{"Image": 5}`, `[]`} {
		resp, err := c.Post("http://berth/v1.50/containers/create", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Message string }
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || e.Message == "" || strings.Contains(e.Message, "\n") {
			t.Errorf("create with %q: status %d message %q, want 400 and a one-line message", body, resp.StatusCode, e.Message)
		}
	}
	resp, err := c.Get("http://berth/containers/nosuch/json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("inspect of an unknown container: %d, want 404", resp.StatusCode)
	}
	// Nothing half-made is visible.
	if out := mustB(t, d, "", "ps", "-aq"); len(strings.Fields(out)) != 1 {
		t.Errorf("ps -a after bad input: %q, want only 'taken'", out)
	}
}

// TestDaemonKill9 kills the daemon under 20 running containers: they keep
// running, and a new daemon finds them, their logs and exit codes.
func TestDaemonKill9(t *testing.T) {
	forRuntimes(t, func(t *testing.T, d *testutil.Daemon) {
		const n = 20
		var ids []string
		for i := 0; i < n; i++ {
			// Even containers run until told; odd ones exit by themselves
			// with their index while the daemon is down.
			script := "trap 'exit 9' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"
			if i%2 == 1 {
				script = fmt.Sprintf("echo start; sleep 2; exit %d", i)
			}
			ids = append(ids, strings.TrimSpace(mustB(t, d, "", "run", "-d", "--name", fmt.Sprintf("c%d", i), "busybox", "sh", "-c", script)))
		}
		d.Kill9()
		time.Sleep(3 * time.Second) // odd containers exit meanwhile
		// Every even container is still running with no daemon.
		for i := 0; i < n; i += 2 {
			out, err := exec.Command("pgrep", "-f", "shim --id "+ids[i]).Output()
			if err != nil || len(strings.Fields(string(out))) == 0 {
				t.Fatalf("container c%d's shim died with the daemon", i)
			}
		}
		d.Restart()
		for i, id := range ids {
			st := inspectField(t, d, id, "{{.State.Status}} {{.State.ExitCode}}")
			want := "running 0"
			if i%2 == 1 {
				want = fmt.Sprintf("exited %d", i)
			}
			if st != want {
				t.Errorf("c%d after the daemon restart: %s, want %s", i, st, want)
			}
		}
		if out := mustB(t, d, "", "ps", "-q"); len(strings.Fields(out)) != n/2 {
			t.Errorf("ps after restart lists %d containers, want %d", len(strings.Fields(out)), n/2)
		}
		// Logs continue.
		before := mustB(t, d, "", "logs", "c0")
		time.Sleep(600 * time.Millisecond)
		after := mustB(t, d, "", "logs", "c0")
		if len(after) <= len(before) {
			t.Errorf("c0's log did not grow after the restart")
		}
		// Exit codes are collected by the new daemon.
		mustB(t, d, "", "stop", "c0")
		if got := inspectField(t, d, "c0", "{{.State.ExitCode}}"); got != "9" {
			t.Errorf("c0 stopped after the restart: exit %s, want 9", got)
		}
		// exec and attach still reach the others.
		if got := mustB(t, d, "", "exec", "c2", "echo", "alive"); got != "alive\n" {
			t.Errorf("exec after restart: %q", got)
		}
	})
}

// TestDockerCLI drives the real docker CLI against berth.
func TestDockerCLI(t *testing.T) {
	if _, err := os.Stat("/usr/local/bin/docker"); err != nil {
		t.Skip("docker CLI not installed at /usr/local/bin/docker")
	}
	forRuntimes(t, func(t *testing.T, d *testutil.Daemon) {
		if got := mustD(t, d, "run", "--rm", "busybox", "echo", "via docker"); got != "via docker\n" {
			t.Fatalf("docker run: %q", got)
		}
		id := strings.TrimSpace(mustD(t, d, "run", "-d", "--name", "dk", "busybox", "sh", "-c", "echo ready; sleep 60"))
		if len(id) != 64 {
			t.Fatalf("docker run -d printed %q", id)
		}
		testutil.WaitFor(t, 5*time.Second, "docker logs shows ready", func() bool {
			out, _, _ := d.Docker("", "logs", "dk")
			return out == "ready\n"
		})
		if out := mustD(t, d, "ps", "--format", "{{.Names}} {{.Status}}"); !strings.HasPrefix(out, "dk Up ") {
			t.Errorf("docker ps: %q", out)
		}
		if got := mustD(t, d, "exec", "dk", "cat", "/etc/hostname"); got != id[:12]+"\n" {
			t.Errorf("docker exec hostname: %q, want %s", got, id[:12])
		}
		var ins []struct {
			State struct {
				Status  string
				Running bool
				Pid     int
			}
			Config struct{ Image string }
			Name   string
		}
		if err := json.Unmarshal([]byte(mustD(t, d, "inspect", "dk")), &ins); err != nil || len(ins) != 1 {
			t.Fatalf("docker inspect: %v", err)
		}
		if ins[0].State.Status != "running" || !ins[0].State.Running || ins[0].State.Pid == 0 || ins[0].Config.Image != "busybox" || ins[0].Name != "/dk" {
			t.Errorf("docker inspect: %+v", ins[0])
		}
		mustD(t, d, "stop", "-t", "1", "dk")
		mustD(t, d, "rm", "dk")
		if out := mustD(t, d, "ps", "-aq"); strings.TrimSpace(out) != "" {
			t.Errorf("docker ps -aq after rm: %q", out)
		}
		_, _, code := d.Docker("", "run", "--rm", "busybox", "sh", "-c", "exit 42")
		if code != 42 {
			t.Errorf("docker run exit code: %d, want 42", code)
		}
	})
}

// checkConsistent checks that what ps -a lists matches the machine: a
// running container's init lives, a stopped one's does not, and every
// record can be inspected.
func checkConsistent(t *testing.T, d *testutil.Daemon) {
	t.Helper()
	for _, id := range strings.Fields(mustB(t, d, "", "ps", "-aq", "--no-trunc")) {
		st := inspectField(t, d, id, "{{.State.Status}} {{.State.Pid}}")
		var status string
		var pid int
		fmt.Sscan(st, &status, &pid)
		switch status {
		case "running":
			if pid <= 0 || exec.Command("kill", "-0", strconv.Itoa(pid)).Run() != nil {
				t.Errorf("%s is running by ps but its init %d is gone", id[:12], pid)
			}
		case "created", "exited":
			if pid != 0 {
				t.Errorf("%s is %s with pid %d", id[:12], status, pid)
			}
		default:
			t.Errorf("%s is %s after a daemon restart", id[:12], status)
		}
	}
}

// TestDaemonKilledMidOperation kills the daemon at different moments of
// run, stop and rm; after each restart the state is consistent, and
// everything can be removed without leaving mounts, records or shims.
func TestDaemonKilledMidOperation(t *testing.T) {
	d := ctrDaemon(t, "berth")
	for i := 0; i < 8; i++ {
		var args []string
		switch i % 3 {
		case 0:
			args = []string{"run", "-d", "--name", fmt.Sprintf("k%d", i), "busybox", "sleep", "120"}
		case 1:
			id := strings.TrimSpace(mustB(t, d, "", "run", "-d", "busybox", "sleep", "120"))
			args = []string{"stop", "-t", "0", id}
		case 2:
			id := strings.TrimSpace(mustB(t, d, "", "run", "-d", "busybox", "sleep", "120"))
			args = []string{"rm", "-f", id}
		}
		cmd := exec.Command(berthBin, args...)
		cmd.Env = d.Env()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i*12) * time.Millisecond)
		d.Kill9()
		_ = cmd.Wait()
		d.Restart()
		checkConsistent(t, d)
	}
	for _, id := range strings.Fields(mustB(t, d, "", "ps", "-aq")) {
		mustB(t, d, "", "rm", "-f", id)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.Root, "containers")); len(ents) != 0 {
		t.Errorf("container directories left after rm -f of all: %d", len(ents))
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	if strings.Contains(string(mounts), d.ExecRoot+"/") {
		t.Errorf("mounts left under %s", d.ExecRoot)
	}
	if out, _ := exec.Command("pgrep", "-f", "state-dir "+d.ExecRoot).Output(); len(out) > 0 {
		t.Errorf("shims left: %s", out)
	}
	// Networking: no lease, no veth on the bridge, no container's rule.
	if leases, _ := filepath.Glob(filepath.Join(d.Root, "network", "endpoints", "*", "*")); len(leases) > 0 {
		t.Errorf("leases left: %v", leases)
	}
	br := strings.TrimSpace(mustB(t, d, "", "network", "inspect", "-f", `{{index .Options "com.docker.network.bridge.name"}}`, "bridge"))
	time.Sleep(200 * time.Millisecond) // the kernel frees veths with their namespace, asynchronously
	if ports, _ := os.ReadDir("/sys/class/net/" + br + "/brif"); len(ports) > 0 {
		t.Errorf("veths left on bridge %s: %d", br, len(ports))
	}
}

// TestCreateOnFullDisk: a create that runs out of space fails cleanly and
// leaves nothing half-made.
func TestCreateOnFullDisk(t *testing.T) {
	testutil.RequireRoot(t)
	root := filepath.Join(t.TempDir(), "small")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", root).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", root).Run() })
	d := testutil.StartDaemon(t, berthBin, "--root", root)
	d.Root = root
	mustB(t, d, "", "import", busybox(t), "busybox:latest")
	fill := filepath.Join(root, "fill")
	exec.Command("dd", "if=/dev/zero", "of="+fill, "bs=1M").Run() // until ENOSPC
	_, errOut, code := d.Berth("", "create", "--name", "nospace", "busybox", "true")
	if code == 0 {
		t.Fatal("create on a full disk succeeded")
	}
	if strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "no space") {
		t.Errorf("create on a full disk: want one line naming the cause, got %q", errOut)
	}
	if out := mustB(t, d, "", "ps", "-aq"); strings.TrimSpace(out) != "" {
		t.Errorf("ps -a after a failed create: %q", out)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "containers")); len(ents) != 0 {
		t.Errorf("%d container directories left after a failed create", len(ents))
	}
	os.Remove(fill)
	if got := mustB(t, d, "", "run", "--rm", "--name", "nospace", "busybox", "echo", "ok"); got != "ok\n" {
		t.Errorf("run after freeing space: %q", got)
	}
}

func TestContainerMoreCommands(t *testing.T) {
	d := ctrDaemon(t, "berth")
	// --init puts a small init at PID 1 that passes the exit code on.
	if got := mustB(t, d, "", "run", "--rm", "--init", "busybox", "cat", "/proc/1/cmdline"); !strings.Contains(got, "berth-init") {
		t.Errorf("--init: PID 1 is %q", got)
	}
	if _, _, code := d.Berth("", "run", "--rm", "--init", "busybox", "sh", "-c", "exit 5"); code != 5 {
		t.Errorf("--init exit code: %d, want 5", code)
	}
	// An image VOLUME becomes an anonymous volume holding the image's
	// content there (copied on first start), removed by rm -v.
	mustB(t, d, "", "import", "--change", "VOLUME /etc", busybox(t), "withvol:1")
	vid := strings.TrimSpace(mustB(t, d, "", "create", "withvol:1", "cat", "/etc/passwd"))
	if got := mustB(t, d, "", "start", "-a", vid); !strings.Contains(got, "root:x:0:0") {
		t.Errorf("image VOLUME /etc: the volume lacks the image's files: %q", got)
	}
	vname := inspectField(t, d, vid, `{{range .Mounts}}{{.Name}}{{end}}`)
	if len(vname) != 64 {
		t.Fatalf("image VOLUME: anonymous volume name %q", vname)
	}
	mustB(t, d, "", "rm", "-v", vid)
	if out := mustB(t, d, "", "volume", "ls", "-q"); strings.Contains(out, vname) {
		t.Errorf("rm -v left the anonymous volume %s", vname[:12])
	}
	// attach to a running container sees its output and ends with it.
	id := strings.TrimSpace(mustB(t, d, "", "run", "-d", "busybox", "sh", "-c", "sleep 1; echo attached-out; exit 6"))
	out, _, code := d.Berth("", "attach", id)
	if out != "attached-out\n" || code != 6 {
		t.Errorf("attach: %q exit %d, want attached-out and 6", out, code)
	}
	// start -a through the docker CLI.
	id2 := strings.TrimSpace(mustD(t, d, "create", "busybox", "echo", "started-attached"))
	if got := mustD(t, d, "start", "-a", id2); got != "started-attached\n" {
		t.Errorf("docker start -a: %q", got)
	}
	// export writes the root filesystem.
	tarPath := filepath.Join(t.TempDir(), "fs.tar")
	mustB(t, d, "", "export", "-o", tarPath, id)
	list, err := exec.Command("tar", "-tf", tarPath).Output()
	if err != nil || !strings.Contains(string(list), "bin/busybox") {
		t.Errorf("export: tar lists %d bytes, err %v", len(list), err)
	}
	// Logs count in system df.
	big := strings.TrimSpace(mustB(t, d, "", "run", "-d", "busybox", "sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x | fold -w 100"))
	mustB(t, d, "", "wait", big)
	resp, err := d.HTTPClient().Get("http://berth/system/df")
	if err != nil {
		t.Fatal(err)
	}
	var df struct {
		Containers []struct {
			ID     string `json:"Id"`
			SizeRw int64
		}
	}
	json.NewDecoder(resp.Body).Decode(&df)
	resp.Body.Close()
	found := false
	for _, c := range df.Containers {
		if c.ID == big {
			found = true
			if c.SizeRw < 300000 {
				t.Errorf("system df: the container with 300 kB of logs has size %d", c.SizeRw)
			}
		}
	}
	if !found {
		t.Errorf("system df does not list container %s", big[:12])
	}
	// container prune removes what is stopped, and only that.
	running := strings.TrimSpace(mustB(t, d, "", "run", "-d", "busybox", "sleep", "60"))
	mustB(t, d, "", "container", "prune", "-f")
	if got := strings.Fields(mustB(t, d, "", "ps", "-aq", "--no-trunc")); len(got) != 1 || got[0] != running {
		t.Errorf("after container prune: %v, want only %s", got, running[:12])
	}
	mustB(t, d, "", "rm", "-f", running)
	mustB(t, d, "", "system", "prune", "-f")
}

// TestContainerReviewFindings holds the cases a review found broken: each
// failed before its fix.
func TestContainerReviewFindings(t *testing.T) {
	d := ctrDaemon(t, "berth")
	// The tail of a large output reaches a slow reader.
	slow := exec.Command("sh", "-c", berthBin+" run --rm busybox seq 1 60000 | (sleep 1; wc -l)")
	slow.Env = d.Env()
	out, err := slow.Output()
	if err != nil || strings.TrimSpace(string(out)) != "60000" {
		t.Errorf("run output to a slow reader: %q lines (%v), want 60000", strings.TrimSpace(string(out)), err)
	}
	// cp does not write through a read-only bind.
	host := t.TempDir()
	id := strings.TrimSpace(mustB(t, d, "", "run", "-d", "-v", host+":/data:ro", "busybox", "sleep", "60"))
	src := filepath.Join(t.TempDir(), "f.txt")
	os.WriteFile(src, []byte("x"), 0o644)
	if _, errOut, code := d.Berth("", "cp", src, id+":/data/"); code == 0 || !strings.Contains(errOut, "read-only") {
		t.Errorf("cp into a :ro bind: exit %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(host, "f.txt")); err == nil {
		t.Error("cp wrote through a read-only bind")
	}
	// A file named .wh.X copied in is a file, not a whiteout.
	whDir := t.TempDir()
	os.WriteFile(filepath.Join(whDir, ".wh.passwd"), []byte("plain\n"), 0o644)
	mustB(t, d, "", "cp", filepath.Join(whDir, ".wh.passwd"), id+":/etc/")
	if got := mustB(t, d, "", "exec", id, "sh", "-c", "cat /etc/.wh.passwd; test -f /etc/passwd && echo kept"); got != "plain\nkept\n" {
		t.Errorf("cp of a .wh. file: %q", got)
	}
	// exec as an unknown user fails, with one message.
	// (Docker writes the reason into the stream, and exits 126.)
	outU, errOut, code := d.Berth("", "exec", "-u", "nosuchuser", id, "true")
	if code != 126 || strings.Count(outU+errOut, "nosuchuser") != 1 {
		t.Errorf("exec -u nosuchuser: exit %d %q %q, want 126 and one message", code, outU, errOut)
	}
	// A container cannot hang the daemon with a FIFO for /etc/passwd.
	mustB(t, d, "", "exec", id, "sh", "-c", "rm /etc/passwd && mkfifo /etc/passwd")
	done := make(chan int, 1)
	go func() { _, _, c := d.Berth("", "exec", "-u", "nobody", id, "true"); done <- c }()
	select {
	case c := <-done:
		if c == 0 {
			t.Error("exec -u nobody with a FIFO passwd succeeded")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("exec -u with a FIFO /etc/passwd hung")
	}
	if out := mustB(t, d, "", "ps", "-q"); !strings.Contains(out, id[:12]) {
		t.Errorf("ps after the FIFO exec: %q", out)
	}
	mustB(t, d, "", "rm", "-f", id)
	// restart of an --rm container keeps it.
	rm := strings.TrimSpace(mustB(t, d, "", "run", "--rm", "-d", "busybox", "sleep", "60"))
	mustB(t, d, "", "restart", "-t", "0", rm)
	if got := inspectField(t, d, rm, "{{.State.Status}}"); got != "running" {
		t.Errorf("--rm container after restart: %s", got)
	}
	mustB(t, d, "", "rm", "-f", rm)
	// attach with logs=1 answers and replays the log.
	lid := strings.TrimSpace(mustB(t, d, "", "run", "-d", "busybox", "echo", "logged"))
	mustB(t, d, "", "wait", lid)
	c := d.HTTPClient()
	resp, err := c.Post("http://berth/containers/"+lid+"/attach?logs=1&stdout=1", "", nil)
	if err != nil {
		t.Fatalf("attach?logs=1: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "logged") {
		t.Errorf("attach?logs=1 replayed %q", body)
	}
	// volume-subpath is refused until it can be mounted safely.
	if _, errOut, code := d.Berth("", "run", "--rm", "--mount", "type=volume,src=vv,dst=/x,volume-subpath=sub", "busybox", "true"); code == 0 || !strings.Contains(errOut, "subpath") {
		t.Errorf("volume-subpath: exit %d %q", code, errOut)
	}
}

// TestShimBinary: containers are supervised by the small embedded shim,
// installed under the exec root, not by berth re-executed.
func TestShimBinary(t *testing.T) {
	d := ctrDaemon(t, "berth")
	id := strings.TrimSpace(mustB(t, d, "", "run", "-d", "busybox", "sleep", "60"))
	pid, err := os.ReadFile(filepath.Join(d.ExecRoot, "c", id[:12], "shim.pid"))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Readlink("/proc/" + strings.TrimSpace(string(pid)) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(exe, filepath.Join(d.ExecRoot, "bin", "berth-shim-")) {
		t.Errorf("the shim runs %s, want the installed berth-shim", exe)
	}
	var rss int
	status, _ := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/status")
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			fmt.Sscan(strings.TrimPrefix(line, "VmRSS:"), &rss)
		}
	}
	t.Logf("shim RSS: %d kB", rss)
	mustB(t, d, "", "rm", "-f", id)

	// The embedded runtime is the installed berth-runtime (the container
	// above ran on it), and it answers as a runtime.
	var rts map[string]struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal([]byte(mustB(t, d, "", "info", "--format", "{{json .Runtimes}}")), &rts); err != nil {
		t.Fatal(err)
	}
	rt := rts["berth"].Path
	if !strings.HasPrefix(rt, filepath.Join(d.ExecRoot, "bin", "berth-runtime-")) {
		t.Errorf("the embedded runtime is %q, want the installed berth-runtime", rt)
	}
	if out, err := exec.Command(rt, "features").Output(); err != nil || !strings.Contains(string(out), `"ociVersionMax"`) {
		t.Errorf("%s features: %v, %s", rt, err, out)
	}
}

// TestDetachKeys: ctrl-p ctrl-q on a terminal leaves `run -it` and the
// container keeps running, for the berth and the docker CLI alike.
func TestDetachKeys(t *testing.T) {
	d := ctrDaemon(t, "berth")
	for _, cli := range []string{berthBin, "/usr/local/bin/docker"} {
		name := "det-" + filepath.Base(cli)
		cmd := exec.Command(cli, "run", "-it", "--name", name, "busybox", "sh")
		cmd.Env = d.Env()
		tty, err := pty.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		go io.Copy(io.Discard, tty)
		testutil.WaitFor(t, 10*time.Second, name+" runs", func() bool {
			out, _, _ := d.Berth("", "inspect", "-f", "{{.State.Running}}", name)
			return strings.TrimSpace(out) == "true"
		})
		time.Sleep(200 * time.Millisecond)
		tty.Write([]byte("echo typed\r"))
		tty.Write([]byte{16, 17})
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%s: the CLI did not detach on ctrl-p ctrl-q", filepath.Base(cli))
		}
		tty.Close()
		if got := inspectField(t, d, name, "{{.State.Running}}"); got != "true" {
			t.Errorf("%s: after detaching the container is running=%s", filepath.Base(cli), got)
		}
		mustB(t, d, "", "rm", "-f", name)
	}
}

// TestConcurrentRenameAndExec: exec create and rename of one container at
// once must not deadlock the daemon (they once took its two locks in
// opposite orders).
func TestConcurrentRenameAndExec(t *testing.T) {
	d := ctrDaemon(t, "berth")
	id := strings.TrimSpace(mustB(t, d, "", "run", "-d", "--name", "ren0", "busybox", "sleep", "120"))
	c := d.HTTPClient()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				var resp *http.Response
				var err error
				if (g+i)%2 == 0 {
					resp, err = c.Post("http://berth/containers/"+id+"/exec", "application/json", strings.NewReader(`{"Cmd":["true"]}`))
				} else {
					resp, err = c.Post(fmt.Sprintf("http://berth/containers/%s/rename?name=ren%d-%d", id, g, i), "", nil)
				}
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				resp.Body.Close()
			}
		}(g)
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("exec and rename at once hung the daemon")
	}
	if _, _, code := d.Berth("", "ps"); code != 0 {
		t.Error("ps failed after the concurrent requests")
	}
}

// TestRunFlags drives the run flags the other tests do not, each checked
// from inside the container.
func TestRunFlags(t *testing.T) {
	d := ctrDaemon(t, "berth")
	envFile := filepath.Join(t.TempDir(), "env")
	os.WriteFile(envFile, []byte("# comment\nFROM_FILE=yes\n"), 0o644)
	got := mustB(t, d, "", "run", "--rm", "--hostname", "h1", "--env-file", envFile, "-l", "team=a",
		"--ulimit", "nofile=512:1024", "--tmpfs", "/scratch:size=1m", "--cpu-shares", "256",
		"busybox", "sh", "-c", `echo $(hostname) $FROM_FILE $(ulimit -n) $(df -k /scratch | tail -1 | awk '{print $2}')`)
	if got != "h1 yes 512 1024\n" {
		t.Errorf("run flags: got %q, want %q", got, "h1 yes 512 1024\n")
	}
	// --stop-signal and --stop-timeout: stop sends the chosen signal, and
	// kills when it is ignored after the timeout.
	id := strings.TrimSpace(mustB(t, d, "", "run", "-d", "--stop-signal", "USR1", "busybox", "sh", "-c", "trap 'exit 10' USR1; while true; do sleep 0.1; done"))
	mustB(t, d, "", "stop", id)
	if got := inspectField(t, d, id, "{{.State.ExitCode}}"); got != "10" {
		t.Errorf("--stop-signal USR1: exit %s, want 10", got)
	}
	id = strings.TrimSpace(mustB(t, d, "", "run", "-d", "--stop-timeout", "1", "busybox", "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"))
	start := time.Now()
	mustB(t, d, "", "stop", id)
	if got := inspectField(t, d, id, "{{.State.ExitCode}}"); got != "137" {
		t.Errorf("--stop-timeout 1 with TERM ignored: exit %s, want 137", got)
	}
	t.Logf("stop with --stop-timeout 1 took %v", time.Since(start))
	// ps filters and formats; logs since and until.
	mustB(t, d, "", "run", "-d", "--name", "lbl", "-l", "tier=web", "busybox", "sh", "-c", "echo early; sleep 2; echo late; sleep 60")
	if out := mustB(t, d, "", "ps", "--filter", "label=tier=web", "--format", "{{.Names}} {{.Label \"tier\"}}"); out != "lbl web\n" {
		t.Errorf("ps --filter label --format: %q", out)
	}
	if out := mustB(t, d, "", "ps", "-a", "--filter", "exited=10", "-q", "--no-trunc"); !strings.Contains(out, "\n") || len(strings.TrimSpace(out)) != 64 {
		t.Errorf("ps --filter exited=10: %q", out)
	}
	time.Sleep(2500 * time.Millisecond)
	if out := mustB(t, d, "", "logs", "--since", "1s", "lbl"); out != "late\n" {
		t.Errorf("logs --since 1s: %q", out)
	}
	if out := mustB(t, d, "", "logs", "--until", "1s", "lbl"); out != "early\nlate\n" && out != "early\n" {
		t.Errorf("logs --until 1s: %q", out)
	}
	mustB(t, d, "", "rm", "-f", "lbl")
}
