// Package runtime drives an OCI runtime through the command-line interface
// runc defines (create, start, state, kill, delete, exec, pause, resume,
// ps, update). The runtime is either runc (or any runtime with runc's
// interface) or berth's embedded one, `berth runtime` (package libct); the
// engine and the shim use one code path for both.
//
// create and exec are run by the shim, which must own the container's
// stdio and reap its processes; this package gives their command lines
// (CreateArgs, ExecArgs, Argv) so both sides agree. The other operations
// are methods that run the runtime and wait for it.
//
// Runtimes are run with --log-format json, so their error messages on
// stderr are JSON lines; ErrorMessage extracts them.
package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/atomicfile"
	"github.com/berth-dev/berth/internal/errdefs"
)

// Runtime is one OCI runtime: its executable and the global arguments
// that precede every subcommand.
type Runtime struct {
	// Name is how users pick it (e.g. "runc", "berth").
	Name string
	// Path is the executable.
	Path string
	// Args are the global arguments, e.g. ["runtime", "--root", dir] for
	// the embedded runtime.
	Args []string
	// StartFunc, if set, starts a created container without running the
	// executable: the embedded runtime's start is one write to a fifo,
	// cheaper done in the daemon than by executing berth again (start is
	// on the path of every `run`).
	StartFunc func(ctx context.Context, id string) error
}

// Embedded returns berth's own runtime: exe (the installed berth-runtime,
// see embedbin), or when exe is "" this executable re-run as `berth
// runtime`; either way `... --root stateRoot ...`.
func Embedded(stateRoot, exe string) (*Runtime, error) {
	args := []string{"--root", stateRoot, "--log-format", "json"}
	if exe == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding berth's executable for the embedded runtime: %w", err)
		}
		exe, args = self, append([]string{"runtime"}, args...)
	}
	return &Runtime{Name: "berth", Path: exe, Args: args}, nil
}

// External returns a runtime with runc's command line at path, keeping
// its state in stateRoot.
func External(name, path, stateRoot string) *Runtime {
	return &Runtime{Name: name, Path: path, Args: []string{"--root", stateRoot, "--log-format", "json"}}
}

// Argv is the full command line for sub (argv[0] is Path).
func (r *Runtime) Argv(sub ...string) []string {
	argv := make([]string, 0, 1+len(r.Args)+len(sub))
	argv = append(argv, r.Path)
	argv = append(argv, r.Args...)
	return append(argv, sub...)
}

// CreateArgs is the subcommand that creates container id from bundle,
// its init waiting to be started. consoleSocket is needed exactly when
// the spec asks for a terminal. The runtime process exits after writing
// pidFile; the init is reparented to the caller's subreaper.
func CreateArgs(bundle, pidFile, consoleSocket, id string) []string {
	args := []string{"create", "--bundle", bundle, "--pid-file", pidFile}
	if consoleSocket != "" {
		args = append(args, "--console-socket", consoleSocket)
	}
	return append(args, id)
}

// ExecArgs is the subcommand that runs the runtime-spec Process in
// processFile inside container id. With detach the runtime exits once the
// process runs (it is reparented to the caller's subreaper); without it
// the runtime waits and exits with the process's status.
func ExecArgs(processFile, pidFile, consoleSocket, id string, detach bool) []string {
	args := []string{"exec", "--process", processFile}
	if detach {
		args = append(args, "--detach")
	}
	if pidFile != "" {
		args = append(args, "--pid-file", pidFile)
	}
	if consoleSocket != "" {
		args = append(args, "--console-socket", consoleSocket)
	}
	return append(args, id)
}

// State is a container's state as the runtime reports it (runc's format:
// the OCI state plus rootfs, created and owner).
type State struct {
	OCIVersion string `json:"ociVersion"`
	ID         string `json:"id"`
	// Pid is the init's pid; 0 once stopped.
	Pid int `json:"pid"`
	// Status is "created", "running", "paused" or "stopped".
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Start runs the created container's process.
func (r *Runtime) Start(ctx context.Context, id string) error {
	if r.StartFunc != nil {
		return r.StartFunc(ctx, id)
	}
	_, err := r.run(ctx, nil, "start", id)
	return err
}

// Kill sends sig to the container's init, or with all to every process in
// it (and then a stopped container is not an error).
func (r *Runtime) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	_, err := r.run(ctx, nil, append(args, id, strconv.Itoa(int(sig)))...)
	return err
}

// Delete removes the container's state and cgroup; with force it kills a
// running container first, and a missing container is not an error.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	_, err := r.run(ctx, nil, append(args, id)...)
	return err
}

// State returns the container's state.
func (r *Runtime) State(ctx context.Context, id string) (*State, error) {
	out, err := r.run(ctx, nil, "state", id)
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, fmt.Errorf("%s state %s: parsing output: %w", r.Name, id, err)
	}
	return &s, nil
}

// Pause freezes every process in the container.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	_, err := r.run(ctx, nil, "pause", id)
	return err
}

// Resume thaws a paused container.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	_, err := r.run(ctx, nil, "resume", id)
	return err
}

// Ps returns the pids (in berth's pid namespace) of the container's
// processes.
func (r *Runtime) Ps(ctx context.Context, id string) ([]int, error) {
	out, err := r.run(ctx, nil, "ps", "--format", "json", id)
	if err != nil {
		return nil, err
	}
	var pids []int
	if err := json.Unmarshal(out, &pids); err != nil {
		return nil, fmt.Errorf("%s ps %s: parsing output: %w", r.Name, id, err)
	}
	return pids, nil
}

// Update changes the container's resource limits; values left nil in res
// are unchanged.
func (r *Runtime) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	data, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("%s update %s: %w", r.Name, id, err)
	}
	_, err = r.run(ctx, data, "update", "--resources", "-", id)
	return err
}

// run runs the runtime with sub, stdin from stdin, and returns stdout.
// A failure becomes one line naming the command and the runtime's own
// message, classed where callers branch on it.
func (r *Runtime) run(ctx context.Context, stdin []byte, sub ...string) ([]byte, error) {
	argv := r.Argv(sub...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", r.Name, strings.Join(sub, " "), ctx.Err())
		}
		msg := ErrorMessage(stderr.Bytes())
		if msg == "" {
			msg = err.Error()
		}
		return nil, classify(fmt.Errorf("%s %s: %s", r.Name, strings.Join(sub, " "), msg), msg)
	}
	return stdout.Bytes(), nil
}

// classify attaches an error class from the runtime's message. The
// messages are runc's (libcontainer's errors), which berth's runtime
// shares; matching them here, once, keeps string tests out of callers.
func classify(err error, msg string) error {
	switch {
	case strings.Contains(msg, "container does not exist"):
		return errdefs.NotFound(err)
	case strings.Contains(msg, "container with given ID already exists"):
		return errdefs.AlreadyExists(err)
	case strings.Contains(msg, "container not running"),
		strings.Contains(msg, "container not paused"),
		strings.Contains(msg, "container paused"),
		strings.Contains(msg, "cannot start"),
		strings.Contains(msg, "that is not stopped"),
		strings.Contains(msg, "cannot exec in a"):
		return errdefs.Conflict(err)
	case strings.Contains(msg, "invalid container ID"), strings.Contains(msg, "unknown signal"):
		return errdefs.InvalidArgument(err)
	}
	return err
}

// ErrorMessage extracts a runtime's error message from what it wrote to
// stderr (or its --log): the "msg" of JSON log lines at level error or
// fatal, else the last non-empty line as is. Lines are joined with "; ".
func ErrorMessage(stderr []byte) string {
	var msgs []string
	last := ""
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if line[0] == '{' && json.Unmarshal([]byte(line), &entry) == nil && entry.Msg != "" {
			if entry.Level == "error" || entry.Level == "fatal" {
				msgs = append(msgs, entry.Msg)
			}
			continue
		}
		last = line
	}
	if len(msgs) == 0 && last != "" {
		msgs = append(msgs, last)
	}
	// The same error is often logged and printed; say it once.
	out := msgs[:0]
	for _, m := range msgs {
		if len(out) == 0 || out[len(out)-1] != m {
			out = append(out, m)
		}
	}
	return strings.Join(out, "; ")
}

// WriteBundle writes s as dir/config.json, atomically, creating dir if
// needed.
func WriteBundle(dir string, s *specs.Spec) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("writing bundle %s: %w", dir, err)
	}
	data, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		return fmt.Errorf("writing bundle %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		return fmt.Errorf("writing bundle %s: %w", dir, err)
	}
	return nil
}

// ParseSignal reads a signal as Docker and runc take it: "SIGTERM",
// "TERM", "term" or "15". An unknown one is an InvalidArgument error.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, errdefs.Invalidf("invalid signal: %s", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, errdefs.Invalidf("invalid signal: %s", s)
	}
	return sig, nil
}
