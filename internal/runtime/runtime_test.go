package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/libct"
	"github.com/berth-dev/berth/internal/testutil"
)

// berthBin, when set (BERTH_BIN=path/to/berth), is the berth binary the
// embedded runtime runs as; by default this test binary plays berth's
// part, dispatching "init" and "runtime" as cmd/berth does, so the suite
// does not depend on the rest of berth building.
var berthBin = os.Getenv("BERTH_BIN")

func init() {
	// libcontainer re-executes /proc/self/exe as "init" for the container.
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libct.Init()
	}
}

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "runtime" {
		os.Exit(libct.Main(os.Args[2:]))
	}
	if os.Geteuid() == 0 {
		// Containers' inits are reparented to us when the runtime's
		// create exits, as they are to the shim; we reap them.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// runtimes are the implementations every test runs against.
var runtimes = []struct {
	name string
	make func(stateRoot string) *runtime.Runtime
}{
	{"berth", func(root string) *runtime.Runtime {
		r, err := runtime.Embedded(root, "")
		if err != nil {
			panic(err)
		}
		if berthBin != "" {
			r.Path = berthBin
		}
		return r
	}},
	{"runc", func(root string) *runtime.Runtime {
		return runtime.External("runc", "/usr/sbin/runc", root)
	}},
}

// harness is one runtime with its own state root.
type harness struct {
	t  testing.TB
	rt *runtime.Runtime
}

func forEachRuntime(t *testing.T, test func(t *testing.T, h *harness)) {
	for _, r := range runtimes {
		t.Run(r.name, func(t *testing.T) {
			testutil.RequireRoot(t)
			if r.name == "runc" {
				if _, err := os.Stat("/usr/sbin/runc"); err != nil {
					t.Skip("runc not installed (apt-get install runc)")
				}
			}
			test(t, &harness{t: t, rt: r.make(t.TempDir())})
		})
	}
}

// container is one test container's bundle.
type container struct {
	id, bundle, rootfs, cgroup string
	spec                       *specs.Spec
	pid                        int
}

var seq atomic.Int64

// newContainer writes a bundle for args on a fresh busybox rootfs;
// change, when given, edits the spec first.
func (h *harness) newContainer(args []string, change func(*specs.Spec)) *container {
	h.t.Helper()
	id := fmt.Sprintf("bt-%s-%d-%d", h.rt.Name, os.Getpid(), seq.Add(1))
	bundle := h.t.TempDir()
	rootfs := testutil.BusyboxRootfs(h.t, filepath.Join(bundle, "rootfs"))
	c := &container{id: id, bundle: bundle, rootfs: rootfs, cgroup: "/berth-test-" + id}
	c.spec = testSpec(rootfs, c.cgroup, args)
	if change != nil {
		change(c.spec)
	}
	if err := runtime.WriteBundle(bundle, c.spec); err != nil {
		h.t.Fatal(err)
	}
	return c
}

// testSpec is a minimal spec: its own pid, mount, uts, ipc and network
// namespaces, /proc, a tmpfs /dev, no seccomp.
func testSpec(rootfs, cgroupsPath string, args []string) *specs.Spec {
	caps := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
		"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE"}
	return &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: rootfs},
		Hostname: "berth-test",
		Process: &specs.Process{
			Args:            args,
			Env:             []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
			Cwd:             "/",
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: cgroupsPath,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.NetworkNamespace},
			},
			Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
		},
	}
}

// create runs the runtime's create with stdout (and stderr) going to
// out, reads the pid file and registers the cleanup: delete --force,
// reap the init, check the cgroup is gone.
func (h *harness) create(c *container, out *os.File) {
	h.t.Helper()
	if err := h.tryCreate(c, out, ""); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) tryCreate(c *container, out *os.File, consoleSocket string) error {
	h.t.Helper()
	pidFile := filepath.Join(c.bundle, "init.pid")
	argv := h.rt.Argv(runtime.CreateArgs(c.bundle, pidFile, consoleSocket, c.id)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	// Files, not buffers: the container inherits them, and Run would
	// wait for a copying goroutine until the container exits.
	errFile := tempFile(h.t)
	cmd.Stdout, cmd.Stderr = out, errFile
	if out != nil {
		cmd.Stderr = out
	}
	h.t.Cleanup(func() { h.cleanup(c) })
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(errFile.Name())
		return fmt.Errorf("create: %v: %s", err, runtime.ErrorMessage(msg))
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return err
	}
	c.pid, err = strconv.Atoi(string(data))
	return err
}

func tempFile(t testing.TB) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func (h *harness) cleanup(c *container) {
	if err := h.rt.Delete(context.Background(), c.id, true); err != nil {
		h.t.Errorf("cleanup: %v", err)
	}
	if c.pid > 0 {
		_, _ = wait(c.pid) // reap; already reaped is fine
	}
	for _, dir := range cgroupDirs(c.cgroup) {
		if _, err := os.Stat(dir); err == nil {
			h.t.Errorf("cgroup %s left after delete", dir)
			_ = os.Remove(dir)
		}
	}
}

// cgroupDirs are the container's cgroup directories that exist (v1: one
// per hierarchy, including the hybrid unified one; v2: one).
func cgroupDirs(path string) []string {
	if isCgroup2() {
		return []string{filepath.Join("/sys/fs/cgroup", path)}
	}
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", path))
	return dirs
}

func isCgroup2() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

func cgroupFile(path, ctl, file string) string {
	if isCgroup2() {
		return filepath.Join("/sys/fs/cgroup", path, file)
	}
	return filepath.Join("/sys/fs/cgroup", ctl, path, file)
}

// wait reaps pid (a child of ours once the runtime has exited).
func wait(pid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		return ws, err
	}
}

// waitExit reaps pid with a deadline and returns its wait status.
func waitExit(t testing.TB, pid int) unix.WaitStatus {
	t.Helper()
	type result struct {
		ws  unix.WaitStatus
		err error
	}
	ch := make(chan result, 1)
	go func() { ws, err := wait(pid); ch <- result{ws, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("wait4(%d): %v", pid, r.err)
		}
		return r.ws
	case <-time.After(20 * time.Second):
		t.Fatalf("pid %d did not exit", pid)
		return 0
	}
}

func (h *harness) state(id string) *runtime.State {
	h.t.Helper()
	s, err := h.rt.State(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *harness) wantStatus(id, want string) *runtime.State {
	h.t.Helper()
	s := h.state(id)
	if s.Status != want {
		h.t.Fatalf("state %s: status %q, want %q", id, s.Status, want)
	}
	return s
}

func pipe(t testing.TB) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func TestLifecycle(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		c := h.newContainer([]string{"sh", "-c", "echo hello $(hostname); exit 3"}, nil)
		r, w := pipe(t)
		h.create(c, w)
		w.Close() // the container holds the only write end now

		s := h.wantStatus(c.id, "created")
		if s.Pid != c.pid || s.ID != c.id || s.Bundle != c.bundle || s.Rootfs != c.rootfs {
			t.Errorf("state = %+v, want pid %d, id %s, bundle %s, rootfs %s", s, c.pid, c.id, c.bundle, c.rootfs)
		}
		if s.Created.IsZero() || time.Since(s.Created) > time.Minute {
			t.Errorf("state.Created = %v", s.Created)
		}
		if err := h.rt.Start(ctx, c.id); err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != "hello berth-test\n" {
			t.Errorf("output %q, want %q", out, "hello berth-test\n")
		}
		ws := waitExit(t, c.pid)
		if ws.ExitStatus() != 3 {
			t.Errorf("exit status %v, want 3", ws)
		}
		if s := h.wantStatus(c.id, "stopped"); s.Pid != 0 {
			t.Errorf("stopped state pid %d, want 0", s.Pid)
		}
		if err := h.rt.Start(ctx, c.id); !errdefs.IsConflict(err) {
			t.Errorf("Start(stopped) = %v, want Conflict", err)
		}
		if err := h.rt.Delete(ctx, c.id, false); err != nil {
			t.Fatal(err)
		}
		if _, err := h.rt.State(ctx, c.id); !errdefs.IsNotFound(err) {
			t.Errorf("State after delete = %v, want NotFound", err)
		}
		for _, dir := range cgroupDirs(c.cgroup) {
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("cgroup %s left after delete", dir)
			}
		}
	})
}

func TestDeleteCreated(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, h *harness) {
		c := h.newContainer([]string{"true"}, nil)
		h.create(c, nil)
		if err := h.rt.Delete(context.Background(), c.id, false); err != nil {
			t.Fatalf("Delete(created) = %v", err)
		}
		if ws := waitExit(t, c.pid); ws.Signal() != syscall.SIGKILL {
			t.Errorf("created init ended with %v, want SIGKILL", ws)
		}
		if _, err := h.rt.State(context.Background(), c.id); !errdefs.IsNotFound(err) {
			t.Errorf("State after delete = %v, want NotFound", err)
		}
	})
}

func TestCreateMissingCommand(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, h *harness) {
		c := h.newContainer([]string{"no-such-command"}, nil)
		err := h.tryCreate(c, nil, "")
		if err == nil || !strings.Contains(err.Error(), "executable file not found in $PATH") {
			t.Fatalf("create = %v, want executable file not found", err)
		}
		if _, err := h.rt.State(context.Background(), c.id); !errdefs.IsNotFound(err) {
			t.Errorf("State after failed create = %v, want NotFound", err)
		}
	})
}

func TestKill(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		// pid 1 only receives signals it handles; the trap handles TERM.
		term := h.newContainer([]string{"sh", "-c", `trap "exit 42" TERM; while :; do sleep 0.05; done`}, nil)
		kill := h.newContainer([]string{"sleep", "1000"}, nil)
		for _, c := range []*container{term, kill} {
			h.create(c, nil)
			if err := h.rt.Start(ctx, c.id); err != nil {
				t.Fatal(err)
			}
			h.wantStatus(c.id, "running")
		}
		if err := h.rt.Delete(ctx, kill.id, false); !errdefs.IsConflict(err) {
			t.Errorf("Delete(running) = %v, want Conflict", err)
		}
		// The trap must be set before the signal arrives.
		time.Sleep(100 * time.Millisecond)
		if err := h.rt.Kill(ctx, term.id, syscall.SIGTERM, false); err != nil {
			t.Fatal(err)
		}
		if ws := waitExit(t, term.pid); ws.ExitStatus() != 42 {
			t.Errorf("after SIGTERM: %v, want exit 42", ws)
		}
		if err := h.rt.Kill(ctx, kill.id, syscall.SIGKILL, false); err != nil {
			t.Fatal(err)
		}
		if ws := waitExit(t, kill.pid); ws.Signal() != syscall.SIGKILL {
			t.Errorf("after SIGKILL: %v, want killed by SIGKILL", ws)
		}
		h.wantStatus(kill.id, "stopped")
		if err := h.rt.Kill(ctx, kill.id, syscall.SIGKILL, false); !errdefs.IsConflict(err) {
			t.Errorf("Kill(stopped) = %v, want Conflict", err)
		}
	})
}

func TestKillAll(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		// sh as pid 1 has no TERM handler, so only --all, which reaches
		// the sleeps too, ends it: its wait returns once they die.
		c := h.running("sh", "-c", "sleep 1000 & sleep 1000 & wait")
		testutil.WaitFor(t, 10*time.Second, "three processes", func() bool {
			pids, err := h.rt.Ps(ctx, c.id)
			return err == nil && len(pids) == 3
		})
		if err := h.rt.Kill(ctx, c.id, syscall.SIGTERM, false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		h.wantStatus(c.id, "running") // pid 1 ignored it
		if err := h.rt.Kill(ctx, c.id, syscall.SIGTERM, true); err != nil {
			t.Fatal(err)
		}
		waitExit(t, c.pid)
		if err := h.rt.Kill(ctx, c.id, syscall.SIGKILL, true); err != nil {
			t.Errorf("Kill(all) of a stopped container = %v, want nil", err)
		}
	})
}

func TestPauseResume(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		c := h.newContainer([]string{"sh", "-c", `i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.02; done`}, nil)
		h.create(c, nil)
		if err := h.rt.Start(ctx, c.id); err != nil {
			t.Fatal(err)
		}
		count := func() int {
			b, _ := os.ReadFile(filepath.Join(c.rootfs, "tmp/count"))
			n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return n
		}
		testutil.WaitFor(t, 10*time.Second, "counter starts", func() bool { return count() > 0 })
		if err := h.rt.Pause(ctx, c.id); err != nil {
			t.Fatal(err)
		}
		h.wantStatus(c.id, "paused")
		before := count()
		time.Sleep(300 * time.Millisecond) // ~15 steps if it were running
		if after := count(); after != before {
			t.Errorf("counter moved from %d to %d while paused", before, after)
		}
		if err := h.rt.Pause(ctx, c.id); err != nil && !errdefs.IsConflict(err) {
			t.Errorf("second Pause = %v", err)
		}
		if err := h.rt.Resume(ctx, c.id); err != nil {
			t.Fatal(err)
		}
		h.wantStatus(c.id, "running")
		testutil.WaitFor(t, 10*time.Second, "counter moves after resume", func() bool { return count() > before+2 })
		if err := h.rt.Resume(ctx, c.id); !errdefs.IsConflict(err) {
			t.Errorf("Resume(running) = %v, want Conflict", err)
		}
		// delete --force of a paused container must work too.
		if err := h.rt.Pause(ctx, c.id); err != nil {
			t.Fatal(err)
		}
		if err := h.rt.Delete(ctx, c.id, true); err != nil {
			t.Fatalf("Delete(paused, force) = %v", err)
		}
		waitExit(t, c.pid)
	})
}

// writeProcess writes a runtime-spec Process for args to a file.
func writeProcess(t testing.TB, dir string, p specs.Process) string {
	t.Helper()
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	p.Env = append(p.Env, "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, "process-*.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func (h *harness) running(args ...string) *container {
	h.t.Helper()
	c := h.newContainer(args, nil)
	h.create(c, nil)
	if err := h.rt.Start(context.Background(), c.id); err != nil {
		h.t.Fatal(err)
	}
	return c
}

func TestExec(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, h *harness) {
		c := h.running("sleep", "1000")

		t.Run("wait", func(t *testing.T) {
			pf := writeProcess(t, c.bundle, specs.Process{Args: []string{"sh", "-c", "echo out $$; echo err >&2; exit 7"}})
			argv := h.rt.Argv(runtime.ExecArgs(pf, "", "", c.id, false)...)
			cmd := exec.Command(argv[0], argv[1:]...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 7 {
				t.Fatalf("exec = %v (stderr %q), want exit status 7", err, stderr.String())
			}
			// $$ is the exec's pid inside the container: not 1 (the init).
			if got := stdout.String(); !strings.HasPrefix(got, "out ") || got == "out 1\n" {
				t.Errorf("stdout %q, want \"out PID\"", got)
			}
			if !strings.Contains(stderr.String(), "err\n") {
				t.Errorf("stderr %q, want err", stderr.String())
			}
		})

		t.Run("detach", func(t *testing.T) {
			pf := writeProcess(t, c.bundle, specs.Process{Args: []string{"sh", "-c", "sleep 0.1; echo detached; exit 5"}})
			pidFile := filepath.Join(t.TempDir(), "exec.pid")
			r, w := pipe(t)
			argv := h.rt.Argv(runtime.ExecArgs(pf, pidFile, "", c.id, true)...)
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Stdout, cmd.Stderr = w, w
			if err := cmd.Run(); err != nil {
				t.Fatalf("exec --detach: %v", err)
			}
			w.Close()
			data, err := os.ReadFile(pidFile)
			if err != nil {
				t.Fatal(err)
			}
			pid, _ := strconv.Atoi(string(data))
			out, _ := io.ReadAll(r)
			if string(out) != "detached\n" {
				t.Errorf("output %q, want detached", out)
			}
			if ws := waitExit(t, pid); ws.ExitStatus() != 5 {
				t.Errorf("detached exec exit %v, want 5", ws)
			}
		})

		for _, tc := range []struct{ cmd, want string }{
			{"no-such-command", "executable file not found in $PATH"},
			{"/etc/passwd", "permission denied"},
		} {
			t.Run(tc.cmd, func(t *testing.T) {
				pf := writeProcess(t, c.bundle, specs.Process{Args: []string{tc.cmd}})
				argv := h.rt.Argv(runtime.ExecArgs(pf, "", "", c.id, false)...)
				cmd := exec.Command(argv[0], argv[1:]...)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				msg := runtime.ErrorMessage(stderr.Bytes())
				if err == nil || !strings.Contains(msg, tc.want) {
					t.Errorf("exec %s = %v, message %q, want one containing %q", tc.cmd, err, msg, tc.want)
				}
			})
		}

		// The container is unharmed by all that.
		h.wantStatus(c.id, "running")
	})
}

func TestTerminal(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, h *harness) {
		c := h.newContainer([]string{"sh", "-c", "tty; echo done"}, func(s *specs.Spec) { s.Process.Terminal = true })
		sock := filepath.Join(t.TempDir(), "console.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		master := make(chan *os.File, 1)
		go func() {
			f, err := recvFd(l)
			if err != nil {
				t.Error(err)
			}
			master <- f
		}()
		if err := h.tryCreate(c, nil, sock); err != nil {
			t.Fatal(err)
		}
		m := <-master
		if m == nil {
			t.FailNow()
		}
		defer m.Close()
		if err := h.rt.Start(context.Background(), c.id); err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(m) // ends with EIO when the container exits
		if got := strings.ReplaceAll(string(out), "\r", ""); !strings.HasPrefix(got, "/dev/pts/") || !strings.HasSuffix(got, "done\n") {
			t.Errorf("terminal output %q, want /dev/pts/N and done", out)
		}
		waitExit(t, c.pid)
	})
}

// recvFd accepts one connection and receives one descriptor (SCM_RIGHTS).
func recvFd(l *net.UnixListener) (*os.File, error) {
	conn, err := l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("console socket: no control message (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("console socket: no descriptor (%v)", err)
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

func TestPs(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, h *harness) {
		c := h.running("sh", "-c", "sleep 1000 & sleep 1000 & wait")
		var pids []int
		testutil.WaitFor(t, 10*time.Second, "three processes in the container", func() bool {
			var err error
			pids, err = h.rt.Ps(context.Background(), c.id)
			if err != nil {
				t.Fatal(err)
			}
			return len(pids) == 3
		})
		if !slices.Contains(pids, c.pid) {
			t.Errorf("Ps = %v, want it to contain the init %d", pids, c.pid)
		}
	})
}

func TestUpdatePidsLimit(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, h *harness) {
		c := h.running("sleep", "1000")
		limit := int64(10)
		if err := h.rt.Update(context.Background(), c.id, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(cgroupFile(c.cgroup, "pids", "pids.max"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(b)); got != "10" {
			t.Errorf("pids.max = %q, want 10", got)
		}
		// Enforced: the eleventh process cannot be forked.
		pf := writeProcess(t, c.bundle, specs.Process{Args: []string{"sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 1000 >/dev/null 2>&1 & done"}})
		argv := h.rt.Argv(runtime.ExecArgs(pf, "", "", c.id, false)...)
		out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if !strings.Contains(string(out), "can't fork") && !strings.Contains(string(out), "Resource temporarily unavailable") {
			t.Errorf("forking past pids.max: %q, want a fork failure", out)
		}
	})
}

func TestNotFound(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		const id = "no-such-container"
		check := func(op string, err error) {
			t.Helper()
			if !errdefs.IsNotFound(err) {
				t.Errorf("%s = %v, want NotFound", op, err)
			}
		}
		_, err := h.rt.State(ctx, id)
		check("State", err)
		check("Start", h.rt.Start(ctx, id))
		check("Kill", h.rt.Kill(ctx, id, syscall.SIGTERM, false))
		check("Pause", h.rt.Pause(ctx, id))
		check("Delete", h.rt.Delete(ctx, id, false))
		_, err = h.rt.Ps(ctx, id)
		check("Ps", err)
		if err := h.rt.Delete(ctx, id, true); err != nil {
			t.Errorf("Delete(force) of a missing container = %v, want nil", err)
		}
	})
}

func TestErrorMessage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"level":"error","msg":"container does not exist","time":"2026-01-01T00:00:00Z"}` + "\n", "container does not exist"},
		{`{"level":"warning","msg":"meh","time":"x"}` + "\n" + `{"level":"error","msg":"boom","time":"x"}` + "\n" + "boom\n", "boom"},
		{"plain failure\n", "plain failure"},
		{"", ""},
	} {
		if got := runtime.ErrorMessage([]byte(tc.in)); got != tc.want {
			t.Errorf("ErrorMessage(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// BenchmarkCreateStartExit times create, start and the exit of `true`,
// and reports the median.
func BenchmarkCreateStartExit(b *testing.B) {
	testutil.RequireRoot(b)
	for _, r := range runtimes {
		b.Run(r.name, func(b *testing.B) {
			h := &harness{t: b, rt: r.make(b.TempDir())}
			rootfs := testutil.BusyboxRootfs(b, filepath.Join(b.TempDir(), "rootfs"))
			var times []time.Duration
			for b.Loop() {
				b.StopTimer()
				c := &container{id: fmt.Sprintf("bb-%s-%d-%d", r.name, os.Getpid(), seq.Add(1)), bundle: b.TempDir(), rootfs: rootfs}
				c.cgroup = "/berth-test-" + c.id
				if err := runtime.WriteBundle(c.bundle, testSpec(rootfs, c.cgroup, []string{"true"})); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				h.create(c, nil)
				if err := h.rt.Start(context.Background(), c.id); err != nil {
					b.Fatal(err)
				}
				waitExit(b, c.pid)
				times = append(times, time.Since(start))
				b.StopTimer()
				if err := h.rt.Delete(context.Background(), c.id, false); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			med := times[len(times)/2]
			b.ReportMetric(float64(med.Microseconds())/1000, "ms/median")
			b.Logf("%s: median create+start+exit of true: %v over %d runs", r.name, med, len(times))
		})
	}
}
