package engine

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
)

// StopOptions are Docker's stop parameters.
type StopOptions struct {
	Signal  string
	Timeout *int // seconds; nil means the container's StopTimeout or 10; -1 waits forever
}

// Stop sends the stop signal, waits, then kills. Stopping a stopped
// container is a no-op.
func (e *Engine) Stop(ctx context.Context, ref string, o StopOptions) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if !c.State.running() {
		c.mu.Unlock()
		return errdefs.NotModified(fmt.Errorf("container %s is not running", shortID(c.ID)))
	}
	if c.State.Status == container.StateRestarting {
		// Nothing runs: stopping ends the back-off.
		c.cancelRestartLocked()
		c.State.ManualStop = true
		err := c.saveLocked()
		c.notifyLocked()
		c.mu.Unlock()
		return err
	}
	c.State.ManualStop = true
	_ = c.saveLocked()
	sigName := o.Signal
	if sigName == "" {
		sigName = c.Config.StopSignal
	}
	timeout := 10
	if c.Config.StopTimeout != nil {
		timeout = *c.Config.StopTimeout
	}
	if o.Timeout != nil {
		timeout = *o.Timeout
	}
	paused := c.State.Status == container.StatePaused
	c.mu.Unlock()

	sig := syscall.SIGTERM
	if sigName != "" {
		if sig, err = runtime.ParseSignal(sigName); err != nil {
			return err
		}
	}
	rt, err := e.runtimeFor(c)
	if err != nil {
		return err
	}
	if err := rt.Kill(ctx, c.ID, sig, false); err != nil && !errdefs.IsNotFound(err) {
		slog.Warn("stop signal failed; killing", "id", shortID(c.ID), "err", err)
	}
	if paused {
		_ = rt.Resume(ctx, c.ID)
	}
	if timeout >= 0 {
		wctx, cancel := context.WithTimeout(ctx, time.Duration(timeout)*time.Second)
		_, werr := e.waitCondition(wctx, c, container.WaitConditionNotRunning)
		cancel()
		if werr == nil {
			e.publish(eventContainer, "stop", c, nil)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := rt.Kill(ctx, c.ID, syscall.SIGKILL, true); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("killing container %s: %w", shortID(c.ID), err)
		}
	}
	_, err = e.waitCondition(ctx, c, container.WaitConditionNotRunning)
	if err == nil {
		e.publish(eventContainer, "stop", c, nil)
	}
	return err
}

// Kill sends a signal (default SIGKILL) to a running container.
func (e *Engine) Kill(ctx context.Context, ref, signal string) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	sig := syscall.SIGKILL
	if signal != "" {
		if sig, err = runtime.ParseSignal(signal); err != nil {
			return err
		}
	}
	return e.kill(ctx, c, ref, sig, true)
}

// kill signals the container. A manual kill that ends it is a stop for
// the restart policy; berth's own (a failed startup probe) is not.
func (e *Engine) kill(ctx context.Context, c *Container, ref string, sig syscall.Signal, manual bool) error {
	c.mu.Lock()
	if c.State.Status == container.StateRestarting {
		c.mu.Unlock()
		return errdefs.Conflict(fmt.Errorf("cannot kill container: %s: container %s is restarting, wait until the container is running", ref, c.ID))
	}
	running := c.State.running()
	if manual && running && (sig == syscall.SIGKILL || sig == syscall.SIGTERM || sig == syscall.SIGINT) {
		c.State.ManualStop = true
		_ = c.saveLocked()
	}
	c.mu.Unlock()
	if !running {
		return errdefs.Conflict(fmt.Errorf("cannot kill container: %s: container %s is not running", ref, c.ID))
	}
	rt, err := e.runtimeFor(c)
	if err != nil {
		return err
	}
	if err := rt.Kill(ctx, c.ID, sig, sig == syscall.SIGKILL); err != nil {
		return err
	}
	e.publish(eventContainer, "kill", c, map[string]string{"signal": strconv.Itoa(int(sig))})
	if sig == syscall.SIGKILL && c.currentStatus() == container.StatePaused {
		// Frozen processes die only when thawed.
		_ = rt.Resume(ctx, c.ID)
	}
	return nil
}

// Restart stops (if running) and starts the container.
func (e *Engine) Restart(ctx context.Context, ref string, o StopOptions) error {
	return e.restart(ctx, ref, o, false)
}

// restart is Restart; byBerth marks a restart berth makes itself (an
// unhealthy container's), which counts as one of its restarts rather than
// a start by hand that resets the count.
func (e *Engine) restart(ctx context.Context, ref string, o StopOptions, byBerth bool) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	// A --rm container restarted is stopped, not removed (as in Docker).
	c.mu.Lock()
	c.restarting = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.restarting = false
		c.mu.Unlock()
	}()
	if err := e.Stop(ctx, c.ID, o); err != nil && !errdefs.IsNotModified(err) {
		return err
	}
	c.mu.Lock()
	count := c.RestartCount
	c.mu.Unlock()
	if err := e.Start(ctx, c.ID); err != nil {
		if byBerth {
			// The stop was berth's, not the user's: the policy still holds.
			c.mu.Lock()
			c.State.ManualStop = false
			_ = c.saveLocked()
			c.mu.Unlock()
		}
		return err
	}
	if byBerth {
		c.mu.Lock()
		c.RestartCount = count + 1
		_ = c.saveLocked()
		c.mu.Unlock()
	}
	e.publish(eventContainer, "restart", c, nil)
	return nil
}

// Wait blocks until the container meets the condition and returns its
// exit code.
// ready, if not nil, is called once the starting state is taken: a
// transition after it is seen (the API flushes its response headers then,
// so `docker run` may start the container without a race).
func (e *Engine) Wait(ctx context.Context, ref string, cond container.WaitCondition, ready func()) (int, error) {
	c, err := e.Get(ref)
	if err != nil {
		return 0, err
	}
	return e.waitCondition(ctx, c, cond, ready)
}

func (e *Engine) waitCondition(ctx context.Context, c *Container, cond container.WaitCondition, ready ...func()) (int, error) {
	c.mu.Lock()
	for _, f := range ready {
		if f != nil {
			f()
		}
	}
	switch cond {
	case "", container.WaitConditionNotRunning:
		for c.State.running() {
			ch := c.changed
			c.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return -1, ctx.Err()
			}
			c.mu.Lock()
		}
		code := c.State.ExitCode
		c.mu.Unlock()
		return code, nil
	case container.WaitConditionNextExit:
		// The next transition from running to not running; a container
		// that is not running yet is waited for through its start.
		started := c.State.running()
		for {
			ch := c.changed
			c.mu.Unlock()
			select {
			case <-ch:
			case <-c.removed:
				c.mu.Lock()
				code := c.State.ExitCode
				c.mu.Unlock()
				return code, nil
			case <-ctx.Done():
				return -1, ctx.Err()
			}
			c.mu.Lock()
			if c.State.running() {
				started = true
			} else if started || c.State.Status == container.StateExited {
				code := c.State.ExitCode
				c.mu.Unlock()
				return code, nil
			}
		}
	case container.WaitConditionRemoved:
		c.mu.Unlock()
		select {
		case <-c.removed:
		case <-ctx.Done():
			return -1, ctx.Err()
		}
		c.mu.Lock()
		code := c.State.ExitCode
		c.mu.Unlock()
		return code, nil
	default:
		c.mu.Unlock()
		return -1, errdefs.Invalidf("invalid condition: %q", cond)
	}
}

// RemoveOptions are Docker's rm flags.
type RemoveOptions struct {
	Force   bool
	Volumes bool
}

// Remove deletes a stopped container (a running one with Force, killing
// it), its root filesystem, logs and, with Volumes, its anonymous volumes.
func (e *Engine) Remove(ctx context.Context, ref string, o RemoveOptions) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	// A removal this daemon runs is a conflict; one a killed daemon left
	// half-done ("removing" on disk) is finished here.
	if c.removing {
		c.mu.Unlock()
		return errdefs.Conflict(fmt.Errorf("removal of container %s is already in progress", shortID(c.ID)))
	}
	c.removing = true
	defer func() {
		c.mu.Lock()
		c.removing = false
		c.mu.Unlock()
	}()
	if c.State.Status == container.StateRestarting && o.Force {
		c.cancelRestartLocked()
	}
	if c.State.running() {
		if !o.Force {
			c.mu.Unlock()
			what := "running"
			if c.State.Status == container.StatePaused {
				what = "paused"
			}
			return errdefs.Conflict(fmt.Errorf("cannot remove container %q: container is %s: stop the container before removing or force remove", "/"+c.Name, what))
		}
		c.mu.Unlock()
		rt, err := e.runtimeFor(c)
		if err != nil {
			return err
		}
		if err := rt.Kill(ctx, c.ID, syscall.SIGKILL, true); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("killing container %s: %w", shortID(c.ID), err)
		}
		_ = rt.Resume(ctx, c.ID) // a paused container dies only when thawed
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = e.waitCondition(wctx, c, container.WaitConditionNotRunning)
		cancel()
		if err != nil {
			return fmt.Errorf("container %s did not exit after SIGKILL: %w", shortID(c.ID), err)
		}
		c.mu.Lock()
	}
	c.State.Status = container.StateRemoving
	c.State.RemoveVolumes = o.Volumes
	if err := c.saveLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	c.notifyLocked()
	if err := unmountRootfs(c); err != nil {
		c.mu.Unlock()
		return err
	}
	e.teardownNetwork(c)
	var anon []string
	for _, m := range c.Mounts {
		if m.Anonymous {
			anon = append(anon, m.Name)
		}
	}
	c.mu.Unlock()

	e.mu.Lock()
	delete(e.containers, c.ID)
	if e.names[c.Name] == c.ID {
		delete(e.names, c.Name)
	}
	for id, x := range e.execs {
		if x.Container == c {
			delete(e.execs, id)
		}
	}
	e.mu.Unlock()
	e.cleanupFiles(c.ID)
	e.publish(eventContainer, "destroy", c, nil)
	close(c.removed)
	if o.Volumes && e.o.Volumes != nil {
		for _, name := range anon {
			if err := e.o.Volumes.Remove(ctx, name, false); err != nil && !errdefs.IsNotFound(err) {
				slog.Warn("removing an anonymous volume failed", "volume", name, "err", err)
			}
		}
	}
	return nil
}

// Pause freezes every process of the container.
func (e *Engine) Pause(ctx context.Context, ref string) error {
	return e.setFrozen(ctx, ref, true)
}

// Unpause thaws a paused container.
func (e *Engine) Unpause(ctx context.Context, ref string) error {
	return e.setFrozen(ctx, ref, false)
}

// setFrozen pauses (freeze) or resumes a container through its runtime
// and records the new status.
func (e *Engine) setFrozen(ctx context.Context, ref string, freeze bool) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	from, to, op := container.StatePaused, container.StateRunning, "paused"
	if freeze {
		from, to = to, from
		if c.State.Status == container.StatePaused {
			return errdefs.Conflict(fmt.Errorf("container %s is already paused", shortID(c.ID)))
		}
		op = "running"
	}
	if c.State.Status != from {
		return errdefs.Conflict(fmt.Errorf("container %s is not %s", shortID(c.ID), op))
	}
	rt, err := e.runtimeFor(c)
	if err != nil {
		return err
	}
	if freeze {
		err = rt.Pause(ctx, c.ID)
	} else {
		err = rt.Resume(ctx, c.ID)
	}
	if err != nil {
		return err
	}
	c.State.Status = to
	_ = c.saveLocked()
	c.notifyLocked()
	if freeze {
		e.publishLocked(eventContainer, "pause", c, nil)
	} else {
		e.publishLocked(eventContainer, "unpause", c, nil)
	}
	return nil
}

// Rename gives a container a new name.
func (e *Engine) Rename(ctx context.Context, ref, newName string) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	if newName == "" {
		return errdefs.Invalidf("Neither old nor new names may be empty")
	}
	// The two locks are never held together: a container's mu can be
	// held for a while (start), and e.mu guards every lookup.
	c.mu.Lock()
	old := c.Name
	c.mu.Unlock()
	if strings.TrimPrefix(newName, "/") == old {
		return errdefs.Invalidf("Renaming a container with the same name as its current name")
	}
	e.mu.Lock()
	name, err := e.reserveNameLocked(newName, c.ID)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.Name = name
	err = c.saveLocked()
	if err != nil {
		c.Name = old
	}
	c.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		delete(e.names, name)
		return err
	}
	if e.names[old] == c.ID {
		delete(e.names, old)
	}
	go e.publish(eventContainer, "rename", c, map[string]string{"oldName": "/" + old})
	return nil
}
