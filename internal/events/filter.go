package events

import (
	"slices"
	"strings"

	"github.com/moby/moby/api/types/events"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/reference"
)

// filterKeys are the filters dockerd's /events accepts. The swarm ones
// (config, node, secret, service) and plugin are accepted for scripts
// written for Docker; they match by name as the others do.
var filterKeys = []string{
	"config", "container", "daemon", "event", "image", "label", "network",
	"node", "plugin", "scope", "secret", "service", "type", "volume",
}

// Filter builds a matcher from Docker's /events filters, with dockerd's
// semantics: values of one key are ORed, keys ANDed, except label, whose
// values must all match.
//
//   - container, daemon, network, volume (and plugin, node, service,
//     secret, config): the actor's ID or its name attribute equals the
//     value or starts with it. As in dockerd, the key does not limit the
//     event type: container=web also matches a volume named web-data.
//   - image: the actor's ID, or its image name (the name attribute of
//     image events, image of container events), equals the value, with or
//     without the tag.
//   - event: the action equals the value; when a value is health_status,
//     exec_create or exec_start, actions starting with a value match too
//     ("health_status: healthy").
//   - type, scope: equal.
//   - label: key or key=value among the actor's attributes.
//
// Unknown keys are errdefs.ErrInvalidArgument.
func Filter(f map[string][]string) (func(events.Message) bool, error) {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	args := map[string]map[string]bool{}
	for _, k := range keys {
		if !slices.Contains(filterKeys, k) {
			return nil, errdefs.Invalidf("invalid filter '%s'", k)
		}
		if len(f[k]) == 0 {
			continue
		}
		args[k] = map[string]bool{}
		for _, v := range f[k] {
			args[k][v] = true
		}
	}
	if len(args) == 0 {
		return func(events.Message) bool { return true }, nil
	}
	fl := filter(args)
	return fl.match, nil
}

// filter is a parsed filter: key -> set of values; a key with no values is
// absent.
type filter map[string]map[string]bool

func (f filter) match(m events.Message) bool {
	return f.matchEvent(m) &&
		f.exact("type", string(m.Type)) &&
		f.exact("scope", m.Scope) &&
		f.byName("daemon", m) &&
		f.byName("container", m) &&
		f.byName("plugin", m) &&
		f.byName("volume", m) &&
		f.byName("network", m) &&
		f.matchImage(m) &&
		f.byName("node", m) &&
		f.byName("service", m) &&
		f.byName("secret", m) &&
		f.byName("config", m) &&
		f.labels(m.Actor.Attributes)
}

// exact: no values for key, or s is one of them.
func (f filter) exact(key, s string) bool {
	vals, ok := f[key]
	return !ok || vals[s]
}

// prefix: no values for key, or s is one of them or starts with one.
func (f filter) prefix(key, s string) bool {
	vals, ok := f[key]
	if !ok || vals[s] {
		return true
	}
	for v := range vals {
		if strings.HasPrefix(s, v) {
			return true
		}
	}
	return false
}

func (f filter) byName(key string, m events.Message) bool {
	return f.prefix(key, m.Actor.ID) || f.prefix(key, m.Actor.Attributes["name"])
}

// matchEvent matches the action; actions that carry a detail after the
// name ("exec_start: sh", "health_status: healthy") match by prefix when
// the filter names one of them bare, as dockerd does.
func (f filter) matchEvent(m events.Message) bool {
	vals := f["event"]
	if vals[string(events.ActionHealthStatus)] || vals[string(events.ActionExecCreate)] || vals[string(events.ActionExecStart)] {
		return f.prefix("event", string(m.Action))
	}
	return f.exact("event", string(m.Action))
}

// matchImage matches image events by ID and name, container events by the
// image they run, each with and without the tag.
func (f filter) matchImage(m events.Message) bool {
	if _, ok := f["image"]; !ok {
		return true
	}
	attr := "image"
	if m.Type == events.ImageEventType {
		attr = "name"
	}
	name := m.Actor.Attributes[attr]
	return f.exact("image", m.Actor.ID) || f.exact("image", name) ||
		f.exact("image", stripTag(m.Actor.ID)) || f.exact("image", stripTag(name))
}

// stripTag is the familiar repository name of an image reference
// ("busybox" for "docker.io/library/busybox:latest"); other strings are
// returned as they are.
func stripTag(s string) string {
	if s == "" {
		return s
	}
	r, err := reference.ParseRepository(s)
	if err != nil {
		return s
	}
	return reference.FamiliarName(r.Name())
}

// labels: every label value (key or key=value) is among the attributes.
func (f filter) labels(attrs map[string]string) bool {
	vals, ok := f["label"]
	if !ok {
		return true
	}
	for v := range vals {
		k, want, hasValue := strings.Cut(v, "=")
		got, present := attrs[k]
		if !present || hasValue && got != want {
			return false
		}
	}
	return true
}
