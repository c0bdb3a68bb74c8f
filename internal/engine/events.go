package engine

import (
	"maps"

	"github.com/moby/moby/api/types/events"
)

// Publisher records events: the daemon's event log (package events).
type Publisher interface {
	Publish(typ events.Type, action events.Action, id string, attrs map[string]string)
}

const (
	eventContainer = events.ContainerEventType
	eventNetwork   = events.NetworkEventType
)

// publish records a container event with Docker's attributes: the
// container's labels, its name and image, and extra (exitCode, signal,
// ...). Callers must not hold c.mu.
func (e *Engine) publish(typ events.Type, action string, c *Container, extra map[string]string) {
	if e.o.Events == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e.publishLocked(typ, action, c, extra)
}

// publishLocked is publish for callers that hold c.mu.
func (e *Engine) publishLocked(typ events.Type, action string, c *Container, extra map[string]string) {
	if e.o.Events == nil {
		return
	}
	attrs := map[string]string{}
	maps.Copy(attrs, c.Config.Labels)
	attrs["name"] = c.Name
	attrs["image"] = c.Config.Image
	maps.Copy(attrs, extra)
	e.o.Events.Publish(typ, events.Action(action), c.ID, attrs)
}
