// Package shim is berth's per-container supervisor: one small process per
// container (berth re-executed as `berth shim ...`) that owns the
// container's stdio, writes its log, reaps it and records its exit status,
// so that the daemon can be killed and restarted without touching running
// containers. It drives any OCI runtime CLI with runc's command line (runc
// itself, or `berth runtime`). The daemon imports this package for its
// client half (Start, Connect, ReadExit, Client); cmd/berth calls Main.
//
// The shim process must stay small (it is one per container), so this
// package imports no more than the standard library, x/sys, errdefs,
// atomicfile, logs and the runtime-spec types.
//
// # Start handshake
//
//	daemon (Start)                  shim (Main)                     runtime CLI
//	  | pipe(r,w); exec berth shim    |                                |
//	  |  setsid, stdio /dev/null,     |                                |
//	  |  w inherited as fd 3 -------->| PR_SET_CHILD_SUBREAPER         |
//	  |                               | pipes or console socket        |
//	  |                               | fork: runtime create ID ------>| fork init (blocked
//	  |                               |                                |  until start), exit
//	  |                               |<------ reap create; init is    |
//	  |                               |        re-parented to the shim |
//	  |                               | write shim.pid, init.pid,      |
//	  |                               | listen shim.sock               |
//	  |<-- fd 3: {"pid":N}\n ---------| (or {"error":"..."}\n, then    |
//	  |                               |  runtime delete -f, exit 1)    |
//	  | attach (optional), then       |                                |
//	  | runtime start ID (daemon) ----------------------------------->|
//	  |                               | ... copy output to log and     |
//	  |                               |     attached clients           |
//	  |                               | init exits: drain output,      |
//	  |                               | exit.json, notify clients,     |
//	  |                               | runtime delete -f, exit        |
//
// # Socket protocol
//
// The shim listens on <state-dir>/shim.sock (mode 0600). Every connection
// carries one request: the client writes one JSON line, a Request. Then:
//
//   - state: the shim answers one JSON line, a State (or {"error":...}).
//   - wait: the shim answers one JSON line, an ExitStatus, once the
//     container has exited (at once if it already has).
//   - attach, exec: binary frames both ways, each
//     [1 byte type][4 bytes big-endian payload length][payload].
//     The shim's first frame is started (7, {"pid":N}) once the client is
//     registered (attach) or the process runs (exec), or error (6, text).
//     Then shim->client: stdout (1), stderr (2) data, and exit (3, an
//     ExitStatus) when the process exits, after its output. Client->shim:
//     stdin (0) data, close-stdin (5), resize (4, {"height":h,"width":w}).
//
// Attach sees only output produced while attached; the log has the rest. A
// slow attach client is disconnected once it is more than sinkFrames frames
// behind, so that it never blocks the container. An exec client is the only
// reader of its process's output, so exec output waits for it instead.
package shim

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Frame types of the attach and exec streams.
const (
	frameStdin      byte = 0
	frameStdout     byte = 1
	frameStderr     byte = 2
	frameExit       byte = 3
	frameResize     byte = 4
	frameCloseStdin byte = 5
	frameError      byte = 6
	frameStarted    byte = 7
)

// maxFrame bounds a frame's payload, so a broken peer cannot make the other
// side allocate without limit.
const maxFrame = 1 << 20

// Request is the first line of every connection.
type Request struct {
	Op string `json:"op"` // state, wait, attach, exec

	// attach and exec
	Stdin  bool `json:"stdin,omitempty"`
	Stdout bool `json:"stdout,omitempty"`
	Stderr bool `json:"stderr,omitempty"`

	// exec
	ID      string          `json:"id,omitempty"`
	Process json.RawMessage `json:"process,omitempty"` // runtime-spec Process
}

// ExitStatus is how a container or exec process ended; it is also the
// content of exit.json.
type ExitStatus struct {
	// ExitCode is the exit code, or 128+Signal when killed by a signal.
	ExitCode int `json:"exit_code"`
	// Signal is the signal that killed the process, 0 if it exited.
	Signal   int       `json:"signal"`
	ExitedAt time.Time `json:"exited_at"`
	OOM      bool      `json:"oom"`
	// OOMKills is the cgroup's oom_kill count at the exit.
	OOMKills int64 `json:"oomKills,omitempty"`
}

// Container statuses reported by State.
const (
	StatusCreated = "created"
	StatusRunning = "running"
	StatusExited  = "exited"
)

// State is the shim's answer to a state request.
type State struct {
	Pid    int         `json:"pid"`
	Status string      `json:"status"`
	Exit   *ExitStatus `json:"exit,omitempty"`
}

type resize struct {
	Height uint16 `json:"height"`
	Width  uint16 `json:"width"`
}

type started struct {
	Pid int `json:"pid"`
}

type errorReply struct {
	Error string `json:"error"`
}

// readyReport is the one line the shim writes on its readiness pipe.
type readyReport struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
	// Up is how long the shim took from its main to ready, and Create
	// the runtime's create within it (µs): with the caller's own clock
	// they split a start's cost (see Timing).
	Up     int64 `json:"up,omitempty"`
	Create int64 `json:"create,omitempty"`
}

// Timing splits the start of a shim: Boot is the exec of the shim binary
// and its runtime's start-up (the caller's wait minus the shim's own
// time), Create the OCI runtime's create, Setup the rest of the shim's
// work (log, sockets, stdio).
type Timing struct {
	Boot, Create, Setup time.Duration
}

// frame encodes one frame.
func frame(typ byte, payload []byte) []byte {
	b := make([]byte, 5+len(payload))
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:5], uint32(len(payload)))
	copy(b[5:], payload)
	return b
}

// readFrame reads one frame; buf is reused for the payload when it is big
// enough.
func readFrame(r io.Reader, hdr []byte, buf []byte) (byte, []byte, error) {
	if _, err := io.ReadFull(r, hdr[:5]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:5])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("shim frame of %d bytes exceeds %d", n, maxFrame)
	}
	if int(n) > cap(buf) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return hdr[0], buf, nil
}
