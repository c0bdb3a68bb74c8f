package shim

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// exec runs a process in the container (`runtime exec --detach`) and
// streams its I/O on conn. Unlike attach, the client is the only reader of
// this output, so a slow client slows the process rather than losing data.
// Exec output is not logged.
func (s *shim) exec(conn *net.UnixConn, br *bufio.Reader, req Request) {
	defer conn.Close()
	// wmu serializes frames from the two output copiers and the exit.
	var wmu sync.Mutex
	send := func(typ byte, b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := conn.Write(frame(typ, b))
		return err
	}
	fail := func(msg string) { send(frameError, []byte(msg)) }

	if req.ID == "" || strings.ContainsAny(req.ID, "/\x00") || len(req.Process) == 0 {
		fail("exec needs an id without slashes and a process")
		return
	}
	var proc struct {
		Terminal bool `json:"terminal"`
	}
	if err := json.Unmarshal(req.Process, &proc); err != nil {
		fail("bad exec process: " + err.Error())
		return
	}
	s.mu.Lock()
	if s.exit != nil {
		s.mu.Unlock()
		fail("container " + s.cfg.id + " is not running")
		return
	}
	s.execSeq++
	// Names from a counter, not the exec ID: a unix socket path must stay
	// under 108 bytes.
	base := filepath.Join(s.cfg.stateDir, "x"+strconv.Itoa(s.execSeq))
	s.mu.Unlock()

	procFile, pidFile := base+".json", base+".pid"
	// Both files are gone before the client hears anything, success or
	// failure: a client that looks right after its reply finds no trace.
	removeFiles := func() { os.Remove(procFile); os.Remove(pidFile) }
	if err := os.WriteFile(procFile, req.Process, 0o600); err != nil {
		removeFiles()
		fail("writing exec process file: " + err.Error())
		return
	}
	argv := s.runtimeArgv("exec", "--process", procFile, "--detach", "--pid-file", pidFile, s.cfg.id)
	pio, err := s.runWithIO("exec", argv, proc.Terminal, req.Stdin, base+".sock")
	if err != nil {
		removeFiles()
		fail(errText(err))
		return
	}
	defer pio.close()
	pid, err := readPid(pidFile)
	removeFiles()
	if err != nil {
		fail(err.Error())
		return
	}
	exitc := s.reaper.watch(pid)
	b, _ := json.Marshal(started{Pid: pid})
	send(frameStarted, b)

	var wg sync.WaitGroup
	for _, o := range []struct {
		f   *os.File
		typ byte
	}{{pio.stdout, frameStdout}, {pio.stderr, frameStderr}} {
		if o.f == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Errors are ignored: after the client hangs up, output is
			// read and dropped so the process never blocks on it.
			copyOut(o.f, func(b []byte) { send(o.typ, b) })
		}()
	}
	// Docker closes an exec's stdin when the client's stdin ends.
	go s.readInput(br, req.Stdin, pio, true)

	ws := <-exitc
	st := exitStatus(ws)
	st.ExitedAt = time.Now().UTC()
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		for _, f := range []*os.File{pio.stdout, pio.stderr} {
			if f != nil {
				f.SetReadDeadline(time.Now())
			}
		}
		<-drained
	}
	eb, _ := json.Marshal(st)
	send(frameExit, eb)
}
