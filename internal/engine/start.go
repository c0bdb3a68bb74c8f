package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/logs"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/spec"
	"github.com/berth-dev/berth/internal/shim"
)

// logPath is Docker's json-file location: <root>/containers/<id>/<id>-json.log.
func (c *Container) logPath() string { return filepath.Join(c.dir, c.ID+"-json.log") }

// Start starts a created or stopped container. Starting a running one is
// a no-op, as Docker answers 304.
func (e *Engine) Start(ctx context.Context, ref string) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	// The container whose network this one joins (--network container:X)
	// is found before c.mu is taken: e.mu is never taken under c.mu.
	// NetworkMode does not change after create.
	var peer *Container
	if nm := c.HostConfig.NetworkMode; nm.IsContainer() {
		if peer, err = e.Get(nm.ConnectedContainer()); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.State.Status {
	case container.StateRunning, container.StateRestarting:
		return errdefs.NotModified(fmt.Errorf("container %s is already running", shortID(c.ID)))
	case container.StatePaused:
		return errdefs.Conflict(fmt.Errorf("cannot start a paused container, try unpause instead"))
	case container.StateRemoving, container.StateDead:
		return errdefs.Conflict(fmt.Errorf("container %s is marked for removal and cannot be started", shortID(c.ID)))
	}
	// A start by hand begins the restart policy afresh, as in Docker.
	c.RestartCount, c.RestartDelay = 0, 0
	return e.startLocked(ctx, c, peer)
}

func (e *Engine) runtimeFor(c *Container) (*runtime.Runtime, error) {
	rt, ok := e.o.Runtimes[c.Runtime]
	if !ok {
		return nil, errdefs.Invalidf("container %s: runtime %q is not configured", shortID(c.ID), c.Runtime)
	}
	return rt, nil
}

func (e *Engine) startLocked(ctx context.Context, c *Container, peer *Container) (err error) {
	t0 := time.Now()
	rt, err := e.runtimeFor(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.run, 0o710); err != nil {
		return err
	}
	// Leftovers of a previous run (a crash between exit and cleanup).
	for _, f := range []string{"exit.json", "shim.sock", "init.pid"} {
		_ = os.Remove(filepath.Join(c.run, f))
	}
	if err := e.mountRootfsLocked(c); err != nil {
		return err
	}
	// A start is not left half-done because its client went away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	defer func() {
		if err != nil {
			// Attach streams waiting for this start end with its error.
			for _, p := range c.pending {
				p.done <- attachResult{nil, err}
			}
			c.pending = nil
			e.teardownNetwork(c)
			_ = unmountRootfs(c)
			c.State.Error = err.Error()
			c.State.ExitCode = startExitCode(err)
			_ = c.saveLocked()
			c.notifyLocked()
		}
	}()
	tNet := time.Now()
	ns, err := e.setupNetworkLocked(ctx, c, peer)
	if err != nil {
		return err
	}
	dNet := time.Since(tNet)
	if err := e.writeEtcFilesLocked(c, ns); err != nil {
		return err
	}
	if err := e.ensureVolumes(ctx, c.Mounts); err != nil {
		return err
	}
	if err := e.prepareMountsLocked(c); err != nil {
		return err
	}
	so := spec.Options{
		ID:             c.ID,
		Config:         c.Config,
		HostConfig:     c.HostConfig,
		Rootfs:         c.rootfsPath(),
		Mounts:         specMounts(c.Mounts),
		HostnamePath:   filepath.Join(c.dir, "hostname"),
		HostsPath:      filepath.Join(c.dir, "hosts"),
		ResolvConfPath: filepath.Join(c.dir, "resolv.conf"),
		CgroupsPath:    cgroupPath(c),
		NetNSPath:      ns.nsPath,
	}
	if ns.etcFrom != nil {
		so.HostnamePath, so.HostsPath, so.ResolvConfPath = etcFilesFrom(ns.etcFrom)
	}
	if c.HostConfig.Init != nil && *c.HostConfig.Init {
		so.InitPath = e.o.InitPath
	}
	s, err := spec.Generate(so)
	if err != nil {
		return err
	}
	if err := runtime.WriteBundle(c.run, s); err != nil {
		return err
	}
	lo, err := logs.ParseOptions(c.HostConfig.LogConfig.Config)
	if err != nil {
		return err
	}
	tSpec := time.Now()
	client, pid, err := shim.Start(ctx, shim.Options{
		ID:          c.ID,
		Bundle:      c.run,
		StateDir:    c.run,
		LogPath:     c.logPath(),
		LogMaxSize:  lo.MaxSize,
		LogMaxFiles: lo.MaxFiles,
		Tty:         c.Config.Tty,
		Stdin:       c.Config.OpenStdin,
		// As in Docker, a terminal's stdin is never closed by an attach
		// ending (a detach, or a client gone): only a pipe's is.
		StdinOnce: c.Config.StdinOnce && !c.Config.Tty,
		Runtime:   rt.Argv(),
		Exe:       e.o.Exe,
	})
	if err != nil {
		return classifyStartError(err)
	}
	// Attach streams that were waiting (docker run, start -a) connect
	// before the process runs, so they miss nothing.
	for _, p := range c.pending {
		st, err := client.Attach(p.ctx, p.opts)
		p.done <- attachResult{st, err}
	}
	c.pending = nil
	tShim := time.Now()
	if err := rt.Start(ctx, c.ID); err != nil {
		_ = rt.Delete(context.WithoutCancel(ctx), c.ID, true)
		client.Close()
		return classifyStartError(err)
	}
	c.shim = client
	c.State = State{Status: container.StateRunning, Pid: pid, StartedAt: time.Now().UTC()}
	c.HasBeenStarted = true
	if err := c.saveLocked(); err != nil {
		slog.Error("container started but its record was not saved", "id", shortID(c.ID), "err", err)
	}
	c.noteLocked(TimelineEntry{Time: c.State.StartedAt, Event: "started"})
	c.notifyLocked()
	e.startHealthLocked(c, true)
	e.watchOOMLocked(c)
	e.publishLocked(eventContainer, "start", c, nil)
	go e.monitor(c, client)
	slog.Debug("container started", "id", shortID(c.ID), "prepare", tSpec.Sub(t0), "network", dNet, "shim+create", tShim.Sub(tSpec), "shim-boot", client.Timing.Boot, "runtime-create", client.Timing.Create, "shim-setup", client.Timing.Setup, "start", time.Since(tShim))
	return nil
}

// classifyStartError turns the runtime's words for a bad command into
// Docker's classes: the CLI maps "executable file not found" to 127 and
// "permission denied" to 126.
func classifyStartError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"),
		strings.Contains(msg, "permission denied"), strings.Contains(msg, "not a directory"):
		return errdefs.InvalidArgument(fmt.Errorf("failed to create task for container: %w", err))
	}
	return err
}

// startExitCode is the exit code Docker records for a container that
// could not start.
func startExitCode(err error) int {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"):
		return 127
	case strings.Contains(msg, "permission denied"):
		return 126
	}
	return 128
}

// monitor waits for the container's exit through its shim and records it.
func (e *Engine) monitor(c *Container, client *shim.Client) {
	st, err := client.Wait(context.Background())
	// A connection that broke while the shim lives (it was busy, or the
	// socket hiccuped) is not an exit: wait again rather than declare the
	// container lost.
	for tries := 0; err != nil && tries < 30 && shimAlive(c.run); tries++ {
		time.Sleep(time.Second)
		var again *shim.Client
		if again, err = shim.Connect(c.run); err == nil {
			st, err = again.Wait(context.Background())
		}
	}
	if err != nil {
		// The shim died without telling us; it may still have recorded
		// the exit before dying.
		if rec, rerr := shim.ReadExit(c.run); rerr == nil {
			st, err = rec, nil
		}
	}
	if err != nil {
		slog.Warn("lost the container's shim; killing the container", "id", shortID(c.ID), "err", err)
		e.killOrphan(c)
		st = &shim.ExitStatus{ExitCode: 137, ExitedAt: time.Now().UTC()}
	}
	e.handleExit(c, client, st)
}

// killOrphan kills a container whose shim is gone: nothing would collect
// its exit or hold its output.
func (e *Engine) killOrphan(c *Container) {
	rt, err := e.runtimeFor(c)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = rt.Kill(ctx, c.ID, 9, true)
	_ = rt.Delete(ctx, c.ID, true)
}

func (e *Engine) handleExit(c *Container, client *shim.Client, st *shim.ExitStatus) {
	c.mu.Lock()
	if c.shim == client {
		c.shim = nil
	}
	// The client's attach and exec streams are not closed here: each ends
	// by itself after the last output and the exit frame, which may still
	// be on their way to a slow reader.
	if err := unmountRootfs(c); err != nil {
		slog.Warn("container exited; unmount failed", "id", shortID(c.ID), "err", err)
	}
	e.teardownNetwork(c)
	c.stopHealthLocked()
	c.stopOOMLocked()
	// The live watch may have reported this kill already (the shim's
	// count says; an old shim sends none).
	oomEvent := st.OOM && (st.OOMKills == 0 && c.State.OOMKills == 0 || st.OOMKills > c.State.OOMKills)
	seen := c.State.OOMKills > 0
	c.State.Status = container.StateExited
	c.State.Pid = 0
	c.State.ExitCode = st.ExitCode
	c.State.OOMKilled = st.OOM || seen
	c.State.FinishedAt = st.ExitedAt
	if c.State.FinishedAt.IsZero() {
		c.State.FinishedAt = time.Now().UTC()
	}
	for _, x := range c.execs {
		x.containerExited()
	}
	reason := "exit"
	switch {
	case st.OOM:
		reason = "oom"
	case c.State.ManualStop:
		reason = "stopped"
	}
	code := st.ExitCode
	c.noteLocked(TimelineEntry{Time: c.State.FinishedAt, Event: "exited", ExitCode: &code, Reason: reason})
	if err := c.saveLocked(); err != nil {
		slog.Error("container exited but its record was not saved", "id", shortID(c.ID), "err", err)
	}
	c.notifyLocked()
	if oomEvent {
		e.publishLocked(eventContainer, "oom", c, nil)
	}
	e.notReadyLocked(c)
	e.publishLocked(eventContainer, "die", c, map[string]string{"exitCode": strconv.Itoa(st.ExitCode)})
	autoRemove := c.HostConfig.AutoRemove && !c.restarting
	if !autoRemove {
		e.scheduleRestartLocked(c)
	}
	c.mu.Unlock()
	if autoRemove {
		if err := e.Remove(context.Background(), c.ID, RemoveOptions{Force: true, Volumes: true}); err != nil && !errdefs.IsNotFound(err) {
			slog.Error("auto-removing the container failed", "id", shortID(c.ID), "err", err)
		}
	}
}

// restore brings one container from a previous daemon back under
// supervision.
func (e *Engine) restore(ctx context.Context, c *Container) {
	c.mu.Lock()
	status := c.State.Status
	wasRunning := c.State.running()
	c.mu.Unlock()
	client, err := shim.Connect(c.run)
	if err != nil {
		if wasRunning && shimAlive(c.run) {
			// A shim that runs but does not answer (overloaded, or from
			// a berth whose protocol this daemon does not speak) keeps
			// its container: try again later rather than kill it.
			slog.Error("container's shim is alive but does not answer; will retry", "id", shortID(c.ID), "err", err)
			go func() {
				time.Sleep(2 * time.Second)
				e.restore(context.Background(), c)
			}()
			return
		}
		if status == container.StateRestarting {
			// Killed during a back-off: the container had exited and
			// its resources were released; the timer goes on.
			c.mu.Lock()
			_ = unmountRootfs(c)
			e.teardownNetwork(c)
			e.resumeRestartLocked(c)
			c.mu.Unlock()
			return
		}
		if wasRunning {
			st, rerr := shim.ReadExit(c.run)
			if rerr != nil {
				slog.Warn("container's shim is gone and left no exit status", "id", shortID(c.ID), "err", err)
				e.killOrphan(c)
				st = &shim.ExitStatus{ExitCode: 137, ExitedAt: time.Now().UTC()}
			}
			e.handleExit(c, nil, st)
			return
		}
		// Not running and no shim: make sure nothing stays mounted.
		_ = unmountRootfs(c)
		e.teardownNetwork(c)
		if status == container.StateRemoving {
			c.mu.Lock()
			vols := c.State.RemoveVolumes
			c.mu.Unlock()
			_ = e.Remove(ctx, c.ID, RemoveOptions{Force: true, Volumes: vols})
		}
		return
	}
	st, err := client.State(ctx)
	if err != nil {
		slog.Warn("container's shim does not answer", "id", shortID(c.ID), "err", err)
		client.Close()
		return
	}
	if st.Status == "created" {
		// The daemon died between create and start: undo the create.
		if rt, err := e.runtimeFor(c); err == nil {
			_ = rt.Delete(ctx, c.ID, true)
		}
		go func() { _, _ = client.Wait(context.Background()); client.Close() }()
		c.mu.Lock()
		_ = unmountRootfs(c)
		e.teardownNetwork(c)
		if c.State.Status == container.StateRestarting {
			// Killed in the middle of a policy restart: try again.
			e.resumeRestartLocked(c)
		}
		c.mu.Unlock()
		return
	}
	// The runtime knows whether it is frozen: a daemon killed between a
	// pause and its record would otherwise be wrong about it.
	frozen := false
	if rt, err := e.runtimeFor(c); err == nil {
		if rs, err := rt.State(ctx, c.ID); err == nil {
			frozen = rs.Status == "paused"
		}
	}
	c.mu.Lock()
	c.shim = client
	fresh := false // the probes' state goes on, unless this is a new run
	if !c.State.running() || c.State.Status == container.StateRestarting {
		// A restart the previous daemon made, before it recorded it.
		c.State = State{Status: container.StateRunning, Pid: st.Pid, StartedAt: time.Now().UTC()}
		c.HasBeenStarted = true
		fresh = true
	}
	if frozen {
		c.State.Status = container.StatePaused
	} else if c.State.Status == container.StatePaused {
		c.State.Status = container.StateRunning
	}
	e.startHealthLocked(c, fresh)
	e.watchOOMLocked(c)
	_ = c.saveLocked()
	c.mu.Unlock()
	go e.monitor(c, client)
}

// shimAlive reports whether the shim recorded in stateDir still runs.
func shimAlive(stateDir string) bool {
	b, err := os.ReadFile(filepath.Join(stateDir, "shim.pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(comm), "shim")
}
