package engine

import (
	"slices"
	"time"
)

// A container's timeline: what happened to it and when (created, started,
// exited with its code and reason, restarted by its policy or its health
// check, health changes), kept in its record across daemon restarts. It is
// the raw data of start-up time, restart rate and availability, which the
// metrics and SLO work reads (GET /berth/v1/containers/{id}/timeline).

// maxTimeline bounds a record's timeline: a crash loop must not grow it.
const maxTimeline = 64

// TimelineEntry is one event of a container's life.
type TimelineEntry struct {
	Time  time.Time `json:"time"`
	Event string    `json:"event"` // created, started, exited, restarting, health
	// ExitCode is set for exited.
	ExitCode *int `json:"exitCode,omitempty"`
	// Reason says why: for exited "exit", "oom", "stopped" (by hand) or
	// "killed"; for restarting "policy" or "unhealthy"; for health the new
	// status.
	Reason string `json:"reason,omitempty"`
	// Delay is a restart's back-off.
	Delay time.Duration `json:"delay,omitempty"`
}

// noteLocked appends to the timeline, dropping the oldest past the bound.
func (c *Container) noteLocked(ev TimelineEntry) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	c.Timeline = append(c.Timeline, ev)
	if len(c.Timeline) > maxTimeline {
		c.Timeline = slices.Clone(c.Timeline[len(c.Timeline)-maxTimeline:])
	}
}

// Timeline returns a container's timeline, oldest first.
func (e *Engine) Timeline(ref string) ([]TimelineEntry, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.Timeline), nil
}
