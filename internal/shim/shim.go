package shim

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/atomicfile"
	"github.com/berth-dev/berth/internal/logs"
)

// Files in the state directory.
const (
	sockName    = "shim.sock"
	shimPidName = "shim.pid"
	initPidName = "init.pid"
	exitName    = "exit.json"
	consoleName = "console.sock"
	shimLogName = "shim.log" // the shim's own stderr
)

// readyFd is the inherited pipe the shim reports readiness on.
const readyFd = 3

// drainTimeout bounds how long output is read after a process exits: a
// process it leaked (a daemonized grandchild) may hold the pipe open for
// ever.
const drainTimeout = 2 * time.Second

// config is the shim's command line.
type config struct {
	id, bundle, stateDir, logPath string
	runtime                       []string
	logMaxSize                    int64
	logMaxFiles                   int
	tty, stdin, stdinOnce         bool
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func parseFlags(args []string) (config, error) {
	var c config
	var rt string
	var rtArgs multiFlag
	fs := flag.NewFlagSet("berth shim", flag.ContinueOnError)
	fs.StringVar(&c.id, "id", "", "container ID")
	fs.StringVar(&c.bundle, "bundle", "", "OCI bundle directory")
	fs.StringVar(&c.stateDir, "state-dir", "", "directory for the shim's socket, pid and exit files")
	fs.StringVar(&rt, "runtime", "", "OCI runtime executable (runc's command line)")
	fs.Var(&rtArgs, "runtime-arg", "argument put before the runtime's subcommand (repeatable)")
	fs.StringVar(&c.logPath, "log-path", "", "container log file")
	fs.Int64Var(&c.logMaxSize, "log-max-size", 0, "rotate the log at this many bytes (0: never)")
	fs.IntVar(&c.logMaxFiles, "log-max-files", 0, "log files kept when rotating")
	fs.BoolVar(&c.tty, "tty", false, "give the container a terminal")
	fs.BoolVar(&c.stdin, "stdin", false, "keep the container's stdin open for attach")
	fs.BoolVar(&c.stdinOnce, "stdin-once", false, "close the container's stdin when the first attached client ends its stdin")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.id == "" || c.bundle == "" || c.stateDir == "" || rt == "" || c.logPath == "" {
		return c, errors.New("berth shim: --id, --bundle, --state-dir, --runtime and --log-path are required")
	}
	path, err := exec.LookPath(rt) // LookPath only searches; it starts nothing
	if err != nil {
		return c, fmt.Errorf("berth shim: runtime: %w", err)
	}
	c.runtime = append([]string{path}, rtArgs...)
	return c, nil
}

// shim is the state of the shim process.
type shim struct {
	// t0 is when main began, createTook the runtime's create (timing).
	t0         time.Time
	createTook time.Duration
	cfg        config
	reaper     *reaper
	log        *logs.Writer
	init       *procIO
	pid        int
	l          *net.UnixListener

	// handlers counts connection handlers, so that exit waits for their
	// last replies.
	handlers    sync.WaitGroup
	exited      chan struct{} // closed once exit is set
	copiersDone chan struct{} // closed when init's output is read to the end
	serveDone   chan struct{} // closed when the accept loop has returned

	// mu guards sinks, exit and execSeq.
	mu      sync.Mutex
	sinks   map[*sink]struct{}
	exit    *ExitStatus
	execSeq int
}

// Main runs the shim; args are the arguments after "shim". It returns the
// process exit code.
func Main(args []string) int {
	// One shim per container: trade a little CPU for memory. One P is
	// plenty for copying output, and each P costs caches and threads.
	goruntime.GOMAXPROCS(1)
	debug.SetGCPercent(20)
	t0 := time.Now()
	ready := os.NewFile(readyFd, "ready")
	cfg, err := parseFlags(args)
	if err != nil {
		report(ready, readyReport{Error: err.Error()})
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s := &shim{cfg: cfg, sinks: map[*sink]struct{}{}, exited: make(chan struct{}), serveDone: make(chan struct{}), t0: t0}
	if err := s.run(ready); err != nil {
		fmt.Fprintf(os.Stderr, "berth shim %s: %v\n", cfg.id, err)
		return 1
	}
	return 0
}

func report(ready *os.File, r readyReport) {
	if ready == nil {
		return
	}
	b, _ := json.Marshal(r)
	ready.Write(append(b, '\n'))
	ready.Close()
}

func (s *shim) runtimeArgv(args ...string) []string {
	return append(append([]string{}, s.cfg.runtime...), args...)
}

func (s *shim) run(ready *os.File) error {
	// Before create: the runtime forks init and exits, and init must be
	// re-parented to the shim, not to pid 1, for the shim to reap it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		err = fmt.Errorf("becoming child subreaper: %w", err)
		report(ready, readyReport{Error: err.Error()})
		return err
	}
	s.reaper = newReaper()
	if err := s.start(); err != nil {
		report(ready, readyReport{Error: errText(err)})
		s.deleteContainer()
		return err
	}
	report(ready, readyReport{Pid: s.pid, Up: time.Since(s.t0).Microseconds(), Create: s.createTook.Microseconds()})
	debug.FreeOSMemory() // return start-up garbage; the shim lives long
	go s.serve()

	ws := <-s.reaper.watch(s.pid)
	st := exitStatus(ws)
	st.ExitedAt = time.Now().UTC()
	return s.finish(st)
}

func errText(err error) string {
	var re *RuntimeError
	if errors.As(err, &re) {
		return re.Msg
	}
	return err.Error()
}

// start creates the container with its stdio, the log, and the socket.
func (s *shim) start() error {
	c := s.cfg
	if err := os.MkdirAll(c.stateDir, 0o700); err != nil {
		return fmt.Errorf("creating shim state directory: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(c.stateDir, shimPidName), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("writing shim pid file: %w", err)
	}
	lw, err := logs.NewWriter(c.logPath, logs.Options{MaxSize: c.logMaxSize, MaxFiles: c.logMaxFiles})
	if err != nil {
		return fmt.Errorf("opening container log: %w", err)
	}
	s.log = lw
	pidFile := filepath.Join(c.stateDir, initPidName)
	os.Remove(pidFile)
	argv := s.runtimeArgv("create", "--bundle", c.bundle, "--pid-file", pidFile, c.id)
	tc := time.Now()
	pio, err := s.runWithIO("create", argv, c.tty, c.stdin, filepath.Join(c.stateDir, consoleName))
	s.createTook = time.Since(tc)
	if err != nil {
		return err
	}
	s.init = pio
	pid, err := readPid(pidFile)
	if err != nil {
		return err
	}
	s.pid = pid
	sock := filepath.Join(c.stateDir, sockName)
	os.Remove(sock) // a previous shim's, killed before it could clean up
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fmt.Errorf("listening on shim socket: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("listening on shim socket: %w", err)
	}
	s.l = l
	s.startCopiers()
	return nil
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading pid file of runtime: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("reading pid file %s: bad pid %q", path, b)
	}
	return pid, nil
}

// startCopiers copies init's output to the log and attached clients.
func (s *shim) startCopiers() {
	s.copiersDone = make(chan struct{})
	var wg sync.WaitGroup
	streams := []struct {
		f    *os.File
		name string
		typ  byte
	}{{s.init.stdout, "stdout", frameStdout}, {s.init.stderr, "stderr", frameStderr}}
	for _, st := range streams {
		if st.f == nil {
			continue
		}
		w := s.log.Stream(st.name)
		typ := st.typ
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Close()
			copyOut(st.f, func(b []byte) {
				w.Write(b)
				s.broadcast(typ, b)
			})
		}()
	}
	go func() { wg.Wait(); close(s.copiersDone) }()
}

func (s *shim) broadcast(typ byte, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var f []byte
	for k := range s.sinks {
		if (typ == frameStdout && k.stdout) || (typ == frameStderr && k.stderr) {
			if f == nil {
				f = frame(typ, b) // one copy shared by every client
			}
			k.send(f)
		}
	}
}

// finish runs when init has exited: drain its output, record the exit,
// tell every client, delete the container and leave.
func (s *shim) finish(st ExitStatus) error {
	st.OOMKills = oomKills(s.cfg.bundle)
	st.OOM = st.OOMKills > 0
	select {
	case <-s.copiersDone:
	case <-time.After(drainTimeout):
		past := time.Now()
		for _, f := range []*os.File{s.init.stdout, s.init.stderr} {
			if f != nil {
				f.SetReadDeadline(past)
			}
		}
		<-s.copiersDone
	}
	b, _ := json.Marshal(st)
	werr := atomicfile.WriteFile(filepath.Join(s.cfg.stateDir, exitName), b, 0o644)
	if werr != nil {
		werr = fmt.Errorf("writing exit status: %w", werr)
	}

	exitFrame := frame(frameExit, b)
	s.mu.Lock()
	s.exit = &st
	close(s.exited)
	var sinks []*sink
	for k := range s.sinks {
		k.send(exitFrame)
		k.finish()
		sinks = append(sinks, k)
	}
	s.mu.Unlock()

	// Give clients a moment to read their last frames and replies.
	deadline := time.After(drainTimeout)
	for _, k := range sinks {
		select {
		case <-k.done:
		case <-deadline:
		}
	}
	// Stop accepting first: handlers.Add must not race with Wait. Later
	// clients find no shim and read exit.json instead.
	s.l.Close()
	<-s.serveDone
	handled := make(chan struct{})
	go func() { s.handlers.Wait(); close(handled) }()
	select {
	case <-handled:
	case <-deadline:
	}

	s.deleteContainer()
	s.init.close()
	s.log.Close()
	os.Remove(filepath.Join(s.cfg.stateDir, sockName))
	return werr
}

// deleteContainer removes the container from the runtime; its failure
// leaves nothing for the shim to do.
func (s *shim) deleteContainer() {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer null.Close()
	_, ch, err := s.reaper.start(s.runtimeArgv("delete", "--force", s.cfg.id), [3]*os.File{null, null, os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth shim %s: %v\n", s.cfg.id, err)
		return
	}
	<-ch
}

func (s *shim) serve() {
	defer close(s.serveDone)
	for {
		conn, err := s.l.AcceptUnix()
		if err != nil {
			return
		}
		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			s.handle(conn)
		}()
	}
}

func (s *shim) handle(conn *net.UnixConn) {
	br := bufio.NewReaderSize(conn, 512)
	line, err := readRequestLine(br)
	if err != nil {
		conn.Close()
		return
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		replyLine(conn, errorReply{Error: "bad shim request: " + err.Error()})
		conn.Close()
		return
	}
	switch req.Op {
	case "state":
		replyLine(conn, s.state())
		conn.Close()
	case "wait":
		s.wait(conn, br)
	case "attach":
		s.attach(conn, br, req)
	case "exec":
		s.exec(conn, br, req)
	default:
		replyLine(conn, errorReply{Error: fmt.Sprintf("unknown shim request %q", req.Op)})
		conn.Close()
	}
}

func replyLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func (s *shim) state() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Pid: s.pid, Status: StatusRunning}
	if s.exit != nil {
		st.Status = StatusExited
		e := *s.exit
		st.Exit = &e
	} else if initWaiting(s.pid) {
		st.Status = StatusCreated
	}
	return st
}

// initWaiting says whether init still waits for `runtime start`. Between
// create and start, runc's init (and libcontainer's, which berth embeds)
// runs as "runc:[2:INIT]"; start makes it exec the container's process.
func initWaiting(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return err == nil && strings.TrimSpace(string(b)) == "runc:[2:INIT]"
}

func (s *shim) wait(conn *net.UnixConn, br *bufio.Reader) {
	defer conn.Close()
	gone := make(chan struct{})
	go func() {
		// A waiting client sends nothing more: a read returns only when it
		// hangs up (or the shim closes the connection).
		br.ReadByte()
		close(gone)
	}()
	select {
	case <-s.exited:
		s.mu.Lock()
		e := *s.exit
		s.mu.Unlock()
		replyLine(conn, e)
	case <-gone:
	}
}

func (s *shim) attach(conn *net.UnixConn, br *bufio.Reader, req Request) {
	k := newSink(conn, req.Stdout, req.Stderr)
	b, _ := json.Marshal(started{Pid: s.pid})
	s.mu.Lock()
	k.send(frame(frameStarted, b))
	if s.exit != nil {
		eb, _ := json.Marshal(s.exit)
		k.send(frame(frameExit, eb))
		k.finish()
		s.mu.Unlock()
		<-k.done
		return
	}
	// Registered under the lock that broadcast takes: the client sees
	// started first, then every chunk from now on.
	s.sinks[k] = struct{}{}
	s.mu.Unlock()

	s.readInput(br, req.Stdin, s.init, s.cfg.stdinOnce)

	s.mu.Lock()
	delete(s.sinks, k)
	s.mu.Unlock()
	k.finish()
	<-k.done
}

// readInput handles a client's frames (stdin, close-stdin, resize) until
// it hangs up. With once, the process's stdin is closed when this client's
// stdin ends, by a close-stdin frame or by hanging up.
func (s *shim) readInput(br *bufio.Reader, wantStdin bool, pio *procIO, once bool) {
	hdr := make([]byte, 5)
	var buf []byte
	for {
		typ, payload, err := readFrame(br, hdr, buf)
		if err != nil {
			break
		}
		if cap(payload) > cap(buf) && cap(payload) <= 64<<10 {
			buf = payload
		}
		switch typ {
		case frameStdin:
			if wantStdin && pio.stdin != nil {
				// A full pipe blocks this client only, not the output.
				pio.stdin.Write(payload)
			}
		case frameCloseStdin:
			if wantStdin && once {
				pio.closeStdin()
			}
		case frameResize:
			var r resize
			if json.Unmarshal(payload, &r) == nil {
				pio.resize(r.Height, r.Width)
			}
		}
	}
	if wantStdin && once {
		pio.closeStdin()
	}
}
