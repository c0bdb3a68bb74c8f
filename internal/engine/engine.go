// Package engine is the container service behind every API: it creates,
// starts, stops and removes containers, attaches to them, runs exec
// processes, and keeps their records. The Docker API adapter (dockerapi)
// and, later, the Kubernetes adapter call it; they never reach into the
// runtime, the shim or the snapshots themselves.
//
// A running container is a shim process (package shim) that owns the
// container's stdio and exit status, so the engine (the daemon) can die
// and come back: Load re-connects to every shim and collects the exits it
// missed.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/dns"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/images"
	bnet "github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/volumes"
)

// Options configure an Engine.
type Options struct {
	// Root holds persistent state: <Root>/containers/<id>/.
	Root string
	// ExecRoot holds what lives as long as the machine: bundles, shim
	// sockets, runtime state: <ExecRoot>/containers/<id>/.
	ExecRoot string
	Images   *images.Service
	Volumes  *volumes.Store
	// Runtimes by name; DefaultRuntime names one of them.
	Runtimes       map[string]*runtime.Runtime
	DefaultRuntime string
	// Exe is the binary the shims run: the small berth-shim (see
	// embedbin.Install) or, by default, this executable.
	Exe string
	// InitPath is a static init for --init (default: Debian's tini-static
	// if present).
	InitPath string
	// Events records what happens to containers (nil: nothing is
	// recorded).
	Events Publisher
	// Networks manages bridge networks; nil means containers get only
	// the none, host and container: modes (and none is the default).
	Networks *bnet.Manager
}

// Engine is the container service.
type Engine struct {
	o Options

	mu         sync.Mutex
	containers map[string]*Container // by ID
	names      map[string]string     // name -> ID
	execs      map[string]*Exec      // exec ID -> exec

	dnsMu sync.Mutex
	dns   map[string]*dns.Server // by network ID: DNS by container name

	// overlayOpts are the overlay mount options every container root
	// gets beyond its directories, read from the kernel once.
	overlayOpts string
}

// New opens the engine's state under o.Root and o.ExecRoot. Call Load to
// read existing containers and re-attach to their shims.
func New(o Options) (*Engine, error) {
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the berth binary for shims: %w", err)
		}
		o.Exe = exe
	}
	if o.InitPath == "" {
		for _, p := range []string{"/usr/bin/tini-static", "/usr/libexec/docker/docker-init"} {
			if _, err := os.Stat(p); err == nil {
				o.InitPath = p
				break
			}
		}
	}
	if _, ok := o.Runtimes[o.DefaultRuntime]; !ok {
		return nil, errdefs.Invalidf("default runtime %q is not configured", o.DefaultRuntime)
	}
	for _, d := range []string{filepath.Join(o.Root, "containers"), filepath.Join(o.ExecRoot, "c")} {
		if err := os.MkdirAll(d, 0o710); err != nil {
			return nil, err
		}
	}
	return &Engine{o: o, containers: map[string]*Container{}, names: map[string]string{}, execs: map[string]*Exec{}, dns: map[string]*dns.Server{},
		overlayOpts: overlayDiffOptions()}, nil
}

func (e *Engine) containerDir(id string) string { return filepath.Join(e.o.Root, "containers", id) }

// runDir holds the bundle and the shim's socket. Its name is the short ID:
// a unix socket path must fit in 108 bytes, and the full ID would not
// leave room under a test's temporary directory. Create keeps short IDs
// unique.
func (e *Engine) runDir(id string) string { return filepath.Join(e.o.ExecRoot, "c", shortID(id)) }

// Load reads every container record and brings each running container
// back under supervision. A directory without a record is what a daemon
// killed during create left: it is removed.
func (e *Engine) Load(ctx context.Context) error {
	entries, err := os.ReadDir(filepath.Join(e.o.Root, "containers"))
	if err != nil {
		return err
	}
	for _, ent := range entries {
		id := ent.Name()
		dir := e.containerDir(id)
		c, err := loadContainer(dir, e.runDir(id))
		if os.IsNotExist(err) {
			slog.Info("removing a container left half-created", "id", shortID(id))
			e.cleanupFiles(id)
			continue
		}
		if err != nil {
			slog.Error("skipping a container whose record cannot be read", "id", shortID(id), "err", err)
			continue
		}
		e.containers[c.ID] = c
		e.names[c.Name] = c.ID
	}
	// A snapshot: restore starts monitors, whose exits may remove
	// containers (--rm) from the map meanwhile.
	for _, c := range e.all() {
		e.restore(ctx, c)
	}
	e.removeBuildLeftovers(ctx)
	// After restore: what runs now keeps its network; the rest of what a
	// crash left (namespaces, veths, leases, rules) goes.
	e.reconcileNetworks(ctx)
	e.startNetworkServices()
	e.startByPolicy(ctx)
	return nil
}

// startByPolicy starts, at daemon start, the containers Docker starts
// then: "always" ones that are not running, and "unless-stopped" ones
// that were not stopped by hand (after a reboot, say, their shims are
// gone).
func (e *Engine) startByPolicy(ctx context.Context) {
	for _, c := range e.all() {
		c.mu.Lock()
		p := c.HostConfig.RestartPolicy.Name
		want := c.HasBeenStarted && (c.State.Status == container.StateExited || c.State.Status == container.StateCreated) &&
			(p == container.RestartPolicyAlways || (p == container.RestartPolicyUnlessStopped && !c.State.ManualStop))
		c.mu.Unlock()
		if want {
			if err := e.Start(ctx, c.ID); err != nil {
				slog.Warn("starting a container by its restart policy failed", "id", shortID(c.ID), "err", err)
			}
		}
	}
}

// Get finds a container by full ID, name, or unique ID prefix, as Docker
// does.
func (e *Engine) Get(ref string) (*Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.getLocked(ref)
}

func (e *Engine) getLocked(ref string) (*Container, error) {
	if ref == "" {
		return nil, errdefs.Invalidf("no container name or ID given")
	}
	if c, ok := e.containers[ref]; ok {
		return c, nil
	}
	name := strings.TrimPrefix(ref, "/")
	if id, ok := e.names[name]; ok {
		return e.containers[id], nil
	}
	var found *Container
	for id, c := range e.containers {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, errdefs.Invalidf("multiple IDs found with provided prefix: %s", ref)
			}
			found = c
		}
	}
	if found == nil {
		return nil, errdefs.NotFoundf("No such container: %s", ref)
	}
	return found, nil
}

// all returns the containers, newest first.
func (e *Engine) all() []*Container {
	e.mu.Lock()
	out := make([]*Container, 0, len(e.containers))
	for _, c := range e.containers {
		out = append(out, c)
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

// ImageInUse reports whether any container was created from the image.
func (e *Engine) ImageInUse(id digest.Digest) bool {
	for _, c := range e.all() {
		if c.Image == id {
			return true
		}
	}
	return false
}

// PinnedLayers lists the layers containers' root filesystems stand on, so
// image GC keeps them (images.Service.Pinned).
func (e *Engine) PinnedLayers() []digest.Digest {
	var out []digest.Digest
	for _, c := range e.all() {
		out = append(out, c.Layers...)
	}
	return out
}

// VolumeInUse reports whether a container mounts the named volume.
func (e *Engine) VolumeInUse(name string) bool {
	for _, c := range e.all() {
		c.mu.Lock()
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.Name == name {
				c.mu.Unlock()
				return true
			}
		}
		c.mu.Unlock()
	}
	return false
}

// ContainerCounts returns the number of containers by state, for /info.
func (e *Engine) ContainerCounts() (total, running, paused, stopped int) {
	for _, c := range e.all() {
		c.mu.Lock()
		switch c.State.Status {
		case "running", "restarting":
			running++
		case "paused":
			paused++
		default:
			stopped++
		}
		c.mu.Unlock()
		total++
	}
	return
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// reserveName claims a name for id: the given one (validated, unique) or a
// generated one.
func (e *Engine) reserveNameLocked(name, id string) (string, error) {
	if name == "" {
		for i := 0; ; i++ {
			n := randomName(i > 5)
			if _, taken := e.names[n]; !taken {
				name = n
				break
			}
		}
	}
	name = strings.TrimPrefix(name, "/")
	if !validName.MatchString(name) {
		return "", errdefs.Invalidf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	if other, taken := e.names[name]; taken {
		return "", errdefs.Conflict(fmt.Errorf("Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, other))
	}
	e.names[name] = id
	return name, nil
}

func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}
