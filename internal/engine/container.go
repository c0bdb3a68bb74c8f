package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/atomicfile"
	"github.com/berth-dev/berth/internal/shim"
)

// recordFile is the container's record under <root>/containers/<id>/.
const recordFile = "container.json"

// Container is one container: its configuration as created, and its state.
// The exported fields are persisted (record.json); the rest lives only in
// the daemon. Lock mu to read or change anything after the container is
// published in the engine's maps.
type Container struct {
	ID      string
	Name    string // without Docker's leading "/"
	Created time.Time
	// Image is the image ID; Config.Image keeps the name the user gave.
	Image      digest.Digest
	Layers     []digest.Digest // diffIDs, bottom first: the lower dirs of the rootfs
	Platform   string
	Path       string
	Args       []string
	Config     *container.Config
	HostConfig *container.HostConfig
	Runtime    string
	State      State
	// Mounts are the resolved mount points (volumes, binds, tmpfs) in the
	// order they are mounted.
	Mounts       []MountPoint
	RestartCount int
	// RestartDelay is the last restart back-off, which the next one grows
	// from (see restart.go).
	RestartDelay time.Duration `json:",omitempty"`
	// Health is the health check's state and last results (nil: no
	// health check).
	Health *container.Health `json:",omitempty"`
	// Readiness and Startup are the berth.probe.readiness and
	// berth.probe.startup probes' states (nil: no such probe).
	Readiness *ProbeState `json:",omitempty"`
	Startup   *ProbeState `json:",omitempty"`
	// Timeline is what happened to the container (timeline.go).
	Timeline []TimelineEntry `json:",omitempty"`
	// Networks are the networks the container joins, by name, with what
	// the user asked for (aliases, address) and the network's ID; the
	// addresses themselves are the network manager's while it runs.
	Networks map[string]*network.EndpointSettings `json:",omitempty"`
	// HasBeenStarted tells a fresh container from a stopped one (Docker's
	// "Created" vs "Exited" in ps).
	HasBeenStarted bool

	mu      sync.Mutex
	dir     string // <root>/containers/<id>
	run     string // <exec-root>/containers/<id>: bundle and shim state
	shim    *shim.Client
	changed chan struct{} // closed and replaced on every state change
	// pending are attach streams waiting for the container to start.
	pending []*pendingAttach
	execs   map[string]*Exec
	// removed is closed when the container is gone (wait condition=removed).
	removed chan struct{}
	// removing is set while this daemon runs Remove.
	removing bool
	// restarting is set during Restart: the exit in between is not the
	// end of an auto-removed container.
	restarting bool
	// restartTimer ends a restart policy's back-off.
	restartTimer *time.Timer
	// healthCancel stops the health monitor.
	healthCancel func()
	// oomCancel stops the live OOM watch.
	oomCancel func()
	// tempMounts counts users of a root filesystem mounted for cp or
	// export of a container that is not running.
	tempMounts int
}

// State is the container's lifecycle state, persisted with the record.
type State struct {
	Status    container.ContainerState
	Pid       int
	ExitCode  int
	Error     string
	OOMKilled bool
	// OOMKills is the cgroup's oom_kill count the live watch reported
	// during this run (an "oom" event each).
	OOMKills   int64 `json:",omitempty"`
	StartedAt  time.Time
	FinishedAt time.Time
	// ManualStop says the user stopped it (for restart policies later).
	ManualStop bool
	// NextRestartAt is when a restarting container starts again.
	NextRestartAt time.Time `json:",omitempty"`
	// RemoveVolumes records rm -v with the "removing" status, so a removal
	// a killed daemon left half-done is finished the same way.
	RemoveVolumes bool `json:",omitempty"`
}

// MountPoint is a resolved mount, in Docker's MountPoint terms plus what
// berth needs to mount it again.
type MountPoint struct {
	container.MountPoint
	// Anonymous volumes are removed with the container by rm -v.
	Anonymous bool `json:",omitempty"`
	// Options are the mount(2) options for the runtime spec.
	Options []string `json:",omitempty"`
	// CopyUp copies the image's content at Destination into a new, empty
	// volume on first start (Docker's behavior for named volumes).
	CopyUp bool `json:",omitempty"`
}

func newContainer(dir, run string) *Container {
	return &Container{dir: dir, run: run, changed: make(chan struct{}), removed: make(chan struct{}), execs: map[string]*Exec{}}
}

// saveLocked writes the record atomically.
func (c *Container) saveLocked() error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(c.dir, recordFile), b, 0o600); err != nil {
		return fmt.Errorf("saving container %s: %w", shortID(c.ID), err)
	}
	return nil
}

// notifyLocked wakes everyone waiting for a state change.
func (c *Container) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func loadContainer(dir, run string) (*Container, error) {
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return nil, err
	}
	c := newContainer(dir, run)
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("container record %s: %w", filepath.Join(dir, recordFile), err)
	}
	return c, nil
}

// currentStatus reads the status under the lock.
func (c *Container) currentStatus() container.ContainerState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.State.Status
}

// running reports whether the container has a live process.
func (s State) running() bool {
	return s.Status == container.StateRunning || s.Status == container.StatePaused || s.Status == container.StateRestarting
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
