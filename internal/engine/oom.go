package engine

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/oom"
)

// cgroupRoot is where the cgroup file systems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupPath is the container's cgroup, relative to each hierarchy's root.
func cgroupPath(c *Container) string { return "/berth/" + c.ID }

// watchOOMLocked publishes an "oom" event the moment the kernel kills a
// process of the running container, as Docker does on containerd's
// TaskOOM: a worker killed under a supervisor that survives would
// otherwise go unseen. The watch ends with the container's cgroup.
func (e *Engine) watchOOMLocked(c *Container) {
	c.stopOOMLocked()
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := oom.Watch(ctx, cgroupRoot, cgroupPath(c), c.State.OOMKills, func(n int64) { e.oomKilled(ctx, c, n) }); err != nil {
		cancel()
		slog.Debug("no live OOM watch; OOM kills are seen at exit", "id", shortID(c.ID), "err", err)
		return
	}
	c.oomCancel = cancel
}

func (c *Container) stopOOMLocked() {
	if c.oomCancel != nil {
		c.oomCancel()
		c.oomCancel = nil
	}
}

// oomKilled records kills the watch saw: State.OOMKilled, the timeline
// and one "oom" event for each report.
func (e *Engine) oomKilled(ctx context.Context, c *Container, kills int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A watch of an earlier run, cancelled while it waited for the lock,
	// must not report into this one.
	if ctx.Err() != nil || (c.State.Status != container.StateRunning && c.State.Status != container.StatePaused) || kills <= c.State.OOMKills {
		return
	}
	c.State.OOMKills = kills
	c.State.OOMKilled = true
	c.noteLocked(TimelineEntry{Time: time.Now().UTC(), Event: "oom", Reason: "oom_kill " + strconv.FormatInt(kills, 10)})
	if err := c.saveLocked(); err != nil {
		slog.Warn("OOM kill not saved", "id", shortID(c.ID), "err", err)
	}
	c.notifyLocked()
	slog.Info("the kernel's OOM killer killed a process of the container", "id", shortID(c.ID), "kills", kills)
	e.publishLocked(eventContainer, "oom", c, nil)
}
