package shim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Options says how Start runs a container's shim.
type Options struct {
	ID       string
	Bundle   string // OCI bundle with config.json
	StateDir string // the shim's files; created if missing
	LogPath  string // container log

	LogMaxSize  int64 // bytes; 0 never rotates
	LogMaxFiles int

	Tty       bool
	Stdin     bool // keep stdin open for attach (docker run -i)
	StdinOnce bool // close stdin when the first attach client ends it

	// Runtime is the OCI runtime's argv before the subcommand, for example
	// {"/usr/sbin/runc", "--root", "/run/berth/runc"}.
	Runtime []string
	// Exe is the berth binary to run as the shim; default /proc/self/exe.
	Exe string
}

// Start runs a shim for a new container and waits until the runtime has
// created it (not started: the caller runs `runtime start` after attaching
// what it wants). It returns a client and the container's init pid. A
// failure reported by the runtime is a *RuntimeError with its message.
// The shim outlives the caller: it runs in its own session, and nothing
// kills it when the caller dies.
func Start(ctx context.Context, o Options) (*Client, int, error) {
	if o.ID == "" || o.Bundle == "" || o.StateDir == "" || o.LogPath == "" || len(o.Runtime) == 0 {
		return nil, 0, errdefs.Invalidf("starting shim: ID, Bundle, StateDir, LogPath and Runtime are required")
	}
	exe := o.Exe
	if exe == "" {
		exe = "/proc/self/exe"
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, 0, fmt.Errorf("starting shim for %s: %w", o.ID, err)
	}
	args := []string{"shim", "--id", o.ID, "--bundle", o.Bundle, "--state-dir", o.StateDir,
		"--log-path", o.LogPath, "--runtime", o.Runtime[0]}
	for _, a := range o.Runtime[1:] {
		args = append(args, "--runtime-arg", a)
	}
	if o.LogMaxSize > 0 {
		args = append(args, "--log-max-size", strconv.FormatInt(o.LogMaxSize, 10), "--log-max-files", strconv.Itoa(o.LogMaxFiles))
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{o.Tty, "--tty"}, {o.Stdin, "--stdin"}, {o.StdinOnce, "--stdin-once"}} {
		if f.on {
			args = append(args, f.name)
		}
	}

	logPath := filepath.Join(o.StateDir, shimLogName)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("starting shim for %s: %w", o.ID, err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, 0, fmt.Errorf("starting shim for %s: %w", o.ID, err)
	}
	defer r.Close()
	tExec := time.Now()
	cmd := exec.Command(exe, args...)
	cmd.Stderr = logf              // stdin and stdout are /dev/null
	cmd.ExtraFiles = []*os.File{w} // fd 3, readyFd
	// A session of its own: the caller's terminal or process group
	// signals do not reach it. No Pdeathsig: it must outlive the caller.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("starting shim for %s: %w", o.ID, err)
	}
	// Reap the shim when it exits, as long as this process lives.
	go cmd.Wait()

	type result struct {
		line []byte
		err  error
	}
	rc := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadBytes('\n')
		rc <- result{line, err}
	}()
	var res result
	select {
	case res = <-rc:
	case <-ctx.Done():
		cmd.Process.Kill()
		return nil, 0, fmt.Errorf("starting shim for %s: %w", o.ID, ctx.Err())
	}
	if len(bytes.TrimSpace(res.line)) == 0 {
		tail, _ := os.ReadFile(logPath)
		if len(tail) > 2048 {
			tail = tail[len(tail)-2048:]
		}
		return nil, 0, fmt.Errorf("shim for %s exited before it was ready: %s", o.ID, bytes.TrimSpace(tail))
	}
	var rep readyReport
	if err := json.Unmarshal(res.line, &rep); err != nil {
		return nil, 0, fmt.Errorf("shim for %s: bad readiness report %q: %w", o.ID, res.line, err)
	}
	if rep.Error != "" {
		return nil, 0, &RuntimeError{Op: "create", Msg: rep.Error}
	}
	up, create := time.Duration(rep.Up)*time.Microsecond, time.Duration(rep.Create)*time.Microsecond
	t := Timing{Boot: time.Since(tExec) - up, Create: create, Setup: up - create}
	return &Client{stateDir: o.StateDir, streams: map[*Stream]struct{}{}, Timing: t}, rep.Pid, nil
}

// Client talks to one container's shim. Each call is its own connection,
// so a Client is safe for concurrent use.
type Client struct {
	stateDir string
	// Timing is how the shim's start went (zero for Connect).
	Timing Timing

	// mu guards streams.
	mu      sync.Mutex
	streams map[*Stream]struct{}
}

// Connect returns a client for the shim whose state directory is
// stateDir, as a restarted daemon does. The error is errdefs.Unavailable
// when no shim answers there (see ReadExit for its recorded exit).
func Connect(stateDir string) (*Client, error) {
	c := &Client{stateDir: stateDir, streams: map[*Stream]struct{}{}}
	conn, err := c.dial(context.Background())
	if err != nil {
		return nil, err
	}
	conn.Close()
	return c, nil
}

// ReadExit reads the exit status the shim recorded in stateDir: an
// errdefs.NotFound error when it has recorded none.
func ReadExit(stateDir string) (*ExitStatus, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, exitName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFound(fmt.Errorf("reading exit status in %s: %w", stateDir, err))
	}
	if err != nil {
		return nil, fmt.Errorf("reading exit status: %w", err)
	}
	var e ExitStatus
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("reading exit status %s: %w", filepath.Join(stateDir, exitName), err)
	}
	return &e, nil
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(c.stateDir, sockName))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errdefs.Unavailable(fmt.Errorf("shim in %s is not running: %w", c.stateDir, err))
	}
	return conn, nil
}

// request dials, sends req and, for state and wait, reads the reply line
// into v, giving up when ctx is done.
func (c *Client) request(ctx context.Context, req Request, v any) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := writeRequest(conn, req); err != nil {
		return c.lost(ctx, req.Op, err)
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		return c.lost(ctx, req.Op, err)
	}
	var er errorReply
	if json.Unmarshal(line, &er) == nil && er.Error != "" {
		return fmt.Errorf("shim %s: %s", req.Op, er.Error)
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("shim %s: bad reply %q: %w", req.Op, line, err)
	}
	return nil
}

// lost explains a connection that broke mid-request.
func (c *Client) lost(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errdefs.Unavailable(fmt.Errorf("shim %s in %s: connection lost: %w", op, c.stateDir, err))
}

func writeRequest(w io.Writer, req Request) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// State returns the container's pid and status. When the shim is gone but
// recorded an exit, that is the answer.
func (c *Client) State(ctx context.Context) (*State, error) {
	var st State
	err := c.request(ctx, Request{Op: "state"}, &st)
	if errdefs.IsUnavailable(err) {
		if e, rerr := ReadExit(c.stateDir); rerr == nil {
			pid, _ := readPid(filepath.Join(c.stateDir, initPidName))
			return &State{Pid: pid, Status: StatusExited, Exit: e}, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// Wait blocks until the container exits, or ctx is done, and returns how
// it exited.
func (c *Client) Wait(ctx context.Context) (*ExitStatus, error) {
	var e ExitStatus
	err := c.request(ctx, Request{Op: "wait"}, &e)
	if errdefs.IsUnavailable(err) {
		// The shim may have exited right after recording the exit.
		if e, rerr := ReadExit(c.stateDir); rerr == nil {
			return e, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// AttachOptions says which of the container's streams to connect; nil
// ones are not attached.
type AttachOptions struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Attach connects to the container's stdio. Output written before the
// call is only in the log. The stream ends when the container exits (Wait
// returns its status), when the client is too slow and the shim drops it,
// or on Close.
func (c *Client) Attach(ctx context.Context, o AttachOptions) (*Stream, error) {
	req := Request{Op: "attach", Stdin: o.Stdin != nil, Stdout: o.Stdout != nil, Stderr: o.Stderr != nil}
	return c.stream(ctx, req, o.Stdin, o.Stdout, o.Stderr)
}

// ExecOptions describes a process to run in the container.
type ExecOptions struct {
	ID      string
	Process *specs.Process
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
}

// Exec runs a process in the running container. A failure to start it is
// a *RuntimeError with the runtime's message; otherwise the stream gives
// its pid, output, and exit status on Wait.
func (c *Client) Exec(ctx context.Context, o ExecOptions) (*Stream, error) {
	if o.Process == nil {
		return nil, errdefs.Invalidf("exec %s: no process", o.ID)
	}
	p, err := json.Marshal(o.Process)
	if err != nil {
		return nil, fmt.Errorf("exec %s: %w", o.ID, err)
	}
	req := Request{Op: "exec", ID: o.ID, Process: p, Stdin: o.Stdin != nil, Stdout: true, Stderr: true}
	return c.stream(ctx, req, o.Stdin, o.Stdout, o.Stderr)
}

func (c *Client) stream(ctx context.Context, req Request, stdin io.Reader, stdout, stderr io.Writer) (*Stream, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*Stream, error) {
		stop()
		conn.Close()
		return nil, err
	}
	if err := writeRequest(conn, req); err != nil {
		return fail(c.lost(ctx, req.Op, err))
	}
	br := bufio.NewReaderSize(conn, 32<<10)
	hdr := make([]byte, 5)
	typ, payload, err := readFrame(br, hdr, nil)
	if err != nil {
		return fail(c.lost(ctx, req.Op, err))
	}
	if !stop() {
		return fail(ctx.Err())
	}
	switch typ {
	case frameError:
		if req.Op == "exec" {
			return fail(&RuntimeError{Op: "exec", Msg: string(payload)})
		}
		return fail(fmt.Errorf("shim %s: %s", req.Op, payload))
	case frameStarted:
	default:
		return fail(fmt.Errorf("shim %s: unexpected frame type %d", req.Op, typ))
	}
	var st started
	if err := json.Unmarshal(payload, &st); err != nil {
		return fail(fmt.Errorf("shim %s: bad start frame: %w", req.Op, err))
	}
	s := &Stream{c: c, conn: conn, pid: st.Pid, done: make(chan struct{}), attach: req.Op == "attach"}
	c.mu.Lock()
	c.streams[s] = struct{}{}
	c.mu.Unlock()
	go s.read(br, hdr, stdout, stderr)
	if stdin != nil {
		go s.pumpStdin(stdin)
	}
	return s, nil
}

// Close closes every stream opened through c. The shim and the container
// keep running.
func (c *Client) Close() error {
	c.mu.Lock()
	streams := c.streams
	c.streams = map[*Stream]struct{}{}
	c.mu.Unlock()
	for s := range streams {
		s.Close()
	}
	return nil
}

// Stream is an attach or exec connection.
type Stream struct {
	c    *Client
	conn net.Conn
	pid  int

	// wmu serializes frames written to the shim.
	wmu sync.Mutex

	done   chan struct{} // closed when the stream has ended; exit, err set
	exit   *ExitStatus
	err    error
	closed sync.Once
	// attach streams end when their reader is gone (a write fails); an
	// exec stream keeps going, output discarded, to learn the exit code.
	attach bool
}

// Pid is the process's pid on the host: the exec'd process, or the
// container's init for attach.
func (s *Stream) Pid() int { return s.pid }

func (s *Stream) read(br *bufio.Reader, hdr []byte, stdout, stderr io.Writer) {
	defer close(s.done)
	defer s.c.forget(s)
	buf := make([]byte, 0, 32<<10)
	for {
		typ, payload, err := readFrame(br, hdr, buf)
		if err != nil {
			s.err = errdefs.Unavailable(fmt.Errorf("shim stream in %s ended before the process exited: %w", s.c.stateDir, err))
			return
		}
		var out *io.Writer
		switch typ {
		case frameStdout:
			out = &stdout
		case frameStderr:
			out = &stderr
		}
		if out != nil && *out != nil {
			if _, err := (*out).Write(payload); err != nil {
				if s.attach {
					s.err = errdefs.Unavailable(fmt.Errorf("attach reader gone: %w", err))
					s.conn.Close()
					return
				}
				*out = nil
			}
			continue
		}
		switch typ {
		case frameExit:
			var e ExitStatus
			if err := json.Unmarshal(payload, &e); err != nil {
				s.err = fmt.Errorf("shim stream: bad exit frame: %w", err)
			} else {
				s.exit = &e
			}
			s.conn.Close()
			return
		}
	}
}

func (c *Client) forget(s *Stream) {
	c.mu.Lock()
	delete(c.streams, s)
	c.mu.Unlock()
}

func (s *Stream) send(typ byte, b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.conn.Write(frame(typ, b))
	return err
}

// pumpStdin forwards stdin until its end, which it reports with a
// close-stdin frame. A Read blocked on stdin is not interrupted by Close.
func (s *Stream) pumpStdin(stdin io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := stdin.Read(buf)
		if n > 0 {
			if s.send(frameStdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			s.send(frameCloseStdin, nil)
			return
		}
	}
}

// Resize sets the terminal size of the process, if it has a terminal.
func (s *Stream) Resize(height, width uint16) error {
	b, _ := json.Marshal(resize{Height: height, Width: width})
	if err := s.send(frameResize, b); err != nil {
		return errdefs.Unavailable(fmt.Errorf("resizing terminal: %w", err))
	}
	return nil
}

// Wait returns when the process has exited, with its status, or when the
// stream ended first (an errdefs.Unavailable error).
func (s *Stream) Wait() (*ExitStatus, error) {
	<-s.done
	return s.exit, s.err
}

// Done is closed when the stream has ended.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Close ends the stream; the process keeps running.
func (s *Stream) Close() error {
	s.closed.Do(func() { s.conn.Close() })
	return nil
}
