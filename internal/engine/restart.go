package engine

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Restart policies, as Docker's: after an exit that was not a manual stop
// (docker stop or kill), "always" and "unless-stopped" start the container
// again, "on-failure[:N]" does after a non-zero exit (at most N times).
// Between exit and restart the container is "restarting" and waits a
// back-off that grows by a factor from an initial delay up to a maximum,
// and falls back to the initial delay once the container has run for a
// while. Docker hard-codes 100 ms doubling to 1 min, reset after 10 s
// (moby#41856 asks to tune it); berth takes those as defaults and reads
// per-container values from labels:
//
//	berth.restart.delay          initial delay       (default 100ms)
//	berth.restart.max-delay      longest delay        (default 1m)
//	berth.restart.factor         growth per restart   (default 2)
//	berth.restart.reset-after    a run this long resets the delay (default 10s)
//
// The delay and the time of the next restart are in the record, so a
// daemon killed during a back-off resumes it where it was.

// Labels that tune a container's restart back-off.
const (
	LabelRestartDelay      = "berth.restart.delay"
	LabelRestartMaxDelay   = "berth.restart.max-delay"
	LabelRestartFactor     = "berth.restart.factor"
	LabelRestartResetAfter = "berth.restart.reset-after"
)

// Backoff is a restart back-off: Initial * Factor^n, at most Max; a run
// of ResetAfter or longer starts again from Initial.
type Backoff struct {
	Initial, Max, ResetAfter time.Duration
	Factor                   float64
}

// DefaultBackoff is Docker's.
var DefaultBackoff = Backoff{Initial: 100 * time.Millisecond, Max: time.Minute, ResetAfter: 10 * time.Second, Factor: 2}

// ParseBackoff reads the restart labels over the defaults.
func ParseBackoff(labels map[string]string) (Backoff, error) {
	b := DefaultBackoff
	dur := func(key string, dst *time.Duration) error {
		v, ok := labels[key]
		if !ok {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return errdefs.Invalidf("label %s=%q: want a duration such as 500ms or 2m", key, v)
		}
		*dst = d
		return nil
	}
	for _, kv := range []struct {
		key string
		dst *time.Duration
	}{{LabelRestartDelay, &b.Initial}, {LabelRestartMaxDelay, &b.Max}, {LabelRestartResetAfter, &b.ResetAfter}} {
		if err := dur(kv.key, kv.dst); err != nil {
			return b, err
		}
	}
	if v, ok := labels[LabelRestartFactor]; ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 1 && f <= 100) { // NaN too
			return b, errdefs.Invalidf("label %s=%q: want a number from 1 to 100", LabelRestartFactor, v)
		}
		b.Factor = f
	}
	if b.Max < b.Initial {
		return b, errdefs.Invalidf("label %s: the longest delay (%s) is shorter than the first (%s)", LabelRestartMaxDelay, b.Max, b.Initial)
	}
	return b, nil
}

// Next is the delay after prev (0: none yet), for a run of ran.
func (b Backoff) Next(prev, ran time.Duration) time.Duration {
	if prev <= 0 || ran >= b.ResetAfter {
		return b.Initial
	}
	next := time.Duration(float64(prev) * b.Factor)
	if next > b.Max || next < prev { // overflow
		next = b.Max
	}
	return next
}

// validateRestart checks a restart policy and its back-off labels at
// create and update.
func validateRestart(p container.RestartPolicy, labels map[string]string) error {
	switch p.Name {
	case "", container.RestartPolicyDisabled, container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		if p.MaximumRetryCount != 0 {
			return errdefs.Invalidf("invalid restart policy: maximum retry count can only be used with 'on-failure'")
		}
	case container.RestartPolicyOnFailure:
		if p.MaximumRetryCount < 0 {
			return errdefs.Invalidf("invalid restart policy: maximum retry count cannot be negative")
		}
	default:
		return errdefs.Invalidf("invalid restart policy '%s'", p.Name)
	}
	_, err := ParseBackoff(labels)
	return err
}

// shouldRestartLocked applies the policy to the exit just recorded.
func (c *Container) shouldRestartLocked() bool {
	if c.restarting || c.removing || c.State.ManualStop {
		return false
	}
	p := c.HostConfig.RestartPolicy
	switch p.Name {
	case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		return true
	case container.RestartPolicyOnFailure:
		return c.State.ExitCode != 0 && (p.MaximumRetryCount == 0 || c.RestartCount < p.MaximumRetryCount)
	}
	return false
}

// scheduleRestartLocked puts an exited container in the restarting state
// and starts it again after its back-off, if its policy says so. It
// reports whether it did.
func (e *Engine) scheduleRestartLocked(c *Container) bool {
	if !c.shouldRestartLocked() {
		return false
	}
	b, err := ParseBackoff(c.Config.Labels)
	if err != nil {
		b = DefaultBackoff
	}
	ran := c.State.FinishedAt.Sub(c.State.StartedAt)
	c.RestartDelay = b.Next(c.RestartDelay, ran)
	c.State.Status = container.StateRestarting
	c.State.NextRestartAt = time.Now().UTC().Add(c.RestartDelay)
	c.noteLocked(TimelineEntry{Event: "restarting", Reason: "policy", Delay: c.RestartDelay})
	if err := c.saveLocked(); err != nil {
		slog.Error("container record not saved before its restart", "id", shortID(c.ID), "err", err)
	}
	c.notifyLocked()
	// Not one of Docker's actions, which has no event between die and
	// start: clients show it as any other.
	e.publishLocked(eventContainer, "restarting", c, map[string]string{
		"restartDelay":  c.RestartDelay.String(),
		"nextRestartAt": c.State.NextRestartAt.Format(time.RFC3339Nano),
		"restartCount":  strconv.Itoa(c.RestartCount),
	})
	e.armRestartLocked(c, c.RestartDelay)
	slog.Info("container exited; restarting after back-off", "id", shortID(c.ID), "exit", c.State.ExitCode, "delay", c.RestartDelay, "restarts", c.RestartCount)
	return true
}

// armRestartLocked starts the timer of a restarting container.
func (e *Engine) armRestartLocked(c *Container, d time.Duration) {
	if c.restartTimer != nil {
		c.restartTimer.Stop()
	}
	c.restartTimer = time.AfterFunc(max(d, 0), func() { e.autoRestart(c) })
}

// cancelRestartLocked ends a back-off: the container is exited.
func (c *Container) cancelRestartLocked() {
	if c.restartTimer != nil {
		c.restartTimer.Stop()
		c.restartTimer = nil
	}
	if c.State.Status == container.StateRestarting {
		c.State.Status = container.StateExited
		c.State.NextRestartAt = time.Time{}
	}
}

// autoRestart is a back-off's end: start the container again, unless it
// was stopped or removed meanwhile. A start that fails is an exit too.
func (e *Engine) autoRestart(c *Container) {
	var peer *Container
	if nm := c.HostConfig.NetworkMode; nm.IsContainer() {
		peer, _ = e.Get(nm.ConnectedContainer())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.State.Status != container.StateRestarting || c.removing {
		return
	}
	c.restartTimer = nil
	c.RestartCount++
	c.State.NextRestartAt = time.Time{}
	started := time.Now().UTC()
	err := e.startLocked(context.Background(), c, peer)
	if err == nil {
		e.publishLocked(eventContainer, "restart", c, nil)
		return
	}
	slog.Warn("restarting the container failed", "id", shortID(c.ID), "err", err)
	c.State.Status = container.StateExited
	c.State.StartedAt, c.State.FinishedAt = started, time.Now().UTC()
	if !e.scheduleRestartLocked(c) {
		_ = c.saveLocked()
		c.notifyLocked()
	}
}

// resumeRestartLocked continues a back-off a previous daemon began.
func (e *Engine) resumeRestartLocked(c *Container) {
	d := time.Until(c.State.NextRestartAt)
	slog.Info("resuming a container's restart back-off", "id", shortID(c.ID), "in", d.Round(time.Millisecond))
	e.armRestartLocked(c, d)
}

// restartStatus is ps's status of a restarting container: Docker's
// "Restarting (1) 2 seconds ago", and when the next attempt comes.
func restartStatus(c *Container) string {
	s := fmt.Sprintf("Restarting (%d) %s ago", c.State.ExitCode, units.HumanDuration(time.Since(c.State.FinishedAt)))
	if d := time.Until(c.State.NextRestartAt); d > 0 {
		s += fmt.Sprintf(", next in %s", d.Round(100*time.Millisecond))
	}
	return s
}
