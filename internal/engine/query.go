package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/storage"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/logs"
)

func timeString(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// InspectResponse is Docker's inspect shape with berth's additions to
// State, which Docker's clients ignore.
type InspectResponse struct {
	container.InspectResponse
	State *InspectState
}

// InspectState is Docker's State plus the time of a restarting
// container's next start and the readiness and startup probes' states.
type InspectState struct {
	*container.State
	NextRestartAt string      `json:",omitempty"`
	Readiness     *ProbeState `json:",omitempty"`
	Startup       *ProbeState `json:",omitempty"`
}

// Inspect returns the container in Docker's inspect shape.
func (e *Engine) Inspect(ctx context.Context, ref string, size bool) (*InspectResponse, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.State
	r := &container.InspectResponse{
		ID:      c.ID,
		Created: timeString(c.Created),
		Path:    c.Path,
		Args:    slices.Clone(c.Args),
		State: &container.State{
			Status:     st.Status,
			Running:    st.Status == container.StateRunning || st.Status == container.StatePaused,
			Paused:     st.Status == container.StatePaused,
			Restarting: st.Status == container.StateRestarting,
			OOMKilled:  st.OOMKilled,
			Dead:       st.Status == container.StateDead,
			Pid:        st.Pid,
			ExitCode:   st.ExitCode,
			Error:      st.Error,
			StartedAt:  timeString(st.StartedAt),
			FinishedAt: timeString(st.FinishedAt),
			Health:     healthCopy(c.Health),
		},
		Image:          c.Image.String(),
		ResolvConfPath: filepath.Join(c.dir, "resolv.conf"),
		HostnamePath:   filepath.Join(c.dir, "hostname"),
		HostsPath:      filepath.Join(c.dir, "hosts"),
		LogPath:        c.logPath(),
		Name:           "/" + c.Name,
		RestartCount:   c.RestartCount,
		Driver:         "overlayfs",
		Platform:       c.Platform,
		HostConfig:     c.HostConfig,
		Config:         c.Config,
		GraphDriver: &storage.DriverData{Name: "overlayfs", Data: map[string]string{
			"UpperDir":  filepath.Join(c.dir, "rw", "upper"),
			"WorkDir":   filepath.Join(c.dir, "rw", "work"),
			"MergedDir": c.rootfsPath(),
		}},
	}
	out := &InspectResponse{InspectResponse: *r, State: &InspectState{State: r.State, Readiness: c.Readiness.copy(), Startup: c.Startup.copy()}}
	if !st.NextRestartAt.IsZero() {
		out.State.NextRestartAt = timeString(st.NextRestartAt)
	}
	r = &out.InspectResponse
	nets, ports := e.networkSettingsLocked(c)
	r.NetworkSettings = &container.NetworkSettings{Networks: nets, Ports: ports}
	for id := range c.execs {
		r.ExecIDs = append(r.ExecIDs, id)
	}
	r.Mounts = []container.MountPoint{}
	for _, m := range c.Mounts {
		r.Mounts = append(r.Mounts, m.MountPoint)
	}
	if size {
		rw := dirSize(filepath.Join(c.dir, "rw", "upper"))
		r.SizeRw = &rw
		total := rw + e.imageSize(c)
		r.SizeRootFs = &total
	}
	return out, nil
}

func (e *Engine) imageSize(c *Container) int64 {
	var n int64
	for _, d := range c.Layers {
		if sz, err := e.o.Images.Layers.Size(d); err == nil {
			n += sz
		}
	}
	return n
}

// dirSize is the apparent size of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// ListOptions are the parameters of GET /containers/json.
type ListOptions struct {
	All     bool
	Limit   int
	Size    bool
	Filters map[string][]string
}

// List returns container summaries, newest first, as docker ps shows them.
func (e *Engine) List(ctx context.Context, o ListOptions) ([]container.Summary, error) {
	for k := range o.Filters {
		switch k {
		case "id", "name", "label", "status", "exited", "before", "since", "ancestor", "volume", "is-task", "health", "network", "publish", "expose":
		default:
			return nil, errdefs.Invalidf("invalid filter '%s'", k)
		}
	}
	var before, since *Container
	if v := o.Filters["before"]; len(v) > 0 {
		c, err := e.Get(v[0])
		if err != nil {
			return nil, err
		}
		before = c
	}
	if v := o.Filters["since"]; len(v) > 0 {
		c, err := e.Get(v[0])
		if err != nil {
			return nil, err
		}
		since = c
	}
	out := []container.Summary{}
	for _, c := range e.all() {
		c.mu.Lock()
		s, ok := e.summaryLocked(c, o, before, since)
		c.mu.Unlock()
		if !ok {
			continue
		}
		out = append(out, s)
		if o.Limit > 0 && len(out) >= o.Limit {
			break
		}
	}
	return out, nil
}

func (e *Engine) summaryLocked(c *Container, o ListOptions, before, since *Container) (container.Summary, bool) {
	st := c.State
	f := o.Filters
	if !o.All && !st.running() && len(f["status"]) == 0 && len(f["exited"]) == 0 && before == nil && since == nil && o.Limit <= 0 {
		return container.Summary{}, false
	}
	if before != nil && !c.Created.Before(before.Created) {
		return container.Summary{}, false
	}
	if since != nil && !c.Created.After(since.Created) {
		return container.Summary{}, false
	}
	if v := f["id"]; len(v) > 0 && !slices.ContainsFunc(v, func(p string) bool { return strings.HasPrefix(c.ID, p) }) {
		return container.Summary{}, false
	}
	if v := f["name"]; len(v) > 0 && !slices.ContainsFunc(v, func(p string) bool { return strings.Contains(c.Name, strings.TrimPrefix(p, "/")) }) {
		return container.Summary{}, false
	}
	if v := f["status"]; len(v) > 0 && !slices.Contains(v, string(st.Status)) {
		return container.Summary{}, false
	}
	if v := f["exited"]; len(v) > 0 {
		if st.Status != container.StateExited || !slices.Contains(v, strconv.Itoa(st.ExitCode)) {
			return container.Summary{}, false
		}
	}
	for _, l := range f["label"] {
		k, val, hasVal := strings.Cut(l, "=")
		got, ok := c.Config.Labels[k]
		if !ok || (hasVal && got != val) {
			return container.Summary{}, false
		}
	}
	if v := f["ancestor"]; len(v) > 0 && !slices.ContainsFunc(v, func(a string) bool {
		if a == c.Config.Image || strings.HasPrefix(c.Image.Encoded(), strings.TrimPrefix(a, "sha256:")) {
			return true
		}
		img, err := e.o.Images.Records.Get(context.Background(), a)
		return err == nil && img.ID == c.Image
	}) {
		return container.Summary{}, false
	}
	if v := f["volume"]; len(v) > 0 && !slices.ContainsFunc(c.Mounts, func(m MountPoint) bool {
		return slices.Contains(v, m.Name) || slices.Contains(v, m.Destination)
	}) {
		return container.Summary{}, false
	}
	if v := f["network"]; len(v) > 0 && !slices.ContainsFunc(v, func(n string) bool {
		if _, ok := c.Networks[n]; ok {
			return true
		}
		for _, es := range c.Networks {
			if es.NetworkID != "" && strings.HasPrefix(es.NetworkID, n) {
				return true
			}
		}
		return n == string(c.HostConfig.NetworkMode)
	}) {
		return container.Summary{}, false
	}
	if v := f["health"]; len(v) > 0 {
		h := string(container.NoHealthcheck)
		if c.Health != nil {
			h = string(c.Health.Status)
		}
		if !slices.Contains(v, h) {
			return container.Summary{}, false
		}
	}
	cmd := strings.Join(append([]string{c.Path}, c.Args...), " ")
	s := container.Summary{
		ID:      c.ID,
		Names:   []string{"/" + c.Name},
		Image:   c.Config.Image,
		ImageID: c.Image.String(),
		Command: cmd,
		Created: c.Created.Unix(),
		Ports:   []container.PortSummary{},
		Labels:  c.Config.Labels,
		State:   st.Status,
		Status:  statusText(c),
		Mounts:  []container.MountPoint{},
	}
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.HostConfig.NetworkMode = string(c.HostConfig.NetworkMode)
	if c.Health != nil {
		s.Health = &container.HealthSummary{Status: c.Health.Status, FailingStreak: c.Health.FailingStreak}
	}
	nets, ports := e.networkSettingsLocked(c)
	s.NetworkSettings = &container.NetworkSettingsSummary{Networks: nets}
	s.Ports = portSummaries(ports)
	for _, m := range c.Mounts {
		s.Mounts = append(s.Mounts, m.MountPoint)
	}
	if o.Size {
		s.SizeRw = dirSize(filepath.Join(c.dir, "rw", "upper"))
		s.SizeRootFs = s.SizeRw + e.imageSize(c)
	}
	return s, true
}

// statusText is Docker's STATUS column: "Up 3 minutes", "Exited (0) 2
// seconds ago", "Created".
func statusText(c *Container) string {
	st := c.State
	switch st.Status {
	case container.StateRunning:
		return "Up " + units.HumanDuration(time.Since(st.StartedAt)) + healthSuffix(c.Health)
	case container.StatePaused:
		return "Up " + units.HumanDuration(time.Since(st.StartedAt)) + " (Paused)"
	case container.StateRestarting:
		return restartStatus(c)
	case container.StateRemoving:
		return "Removal In Progress"
	case container.StateDead:
		return "Dead"
	case container.StateExited:
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, units.HumanDuration(time.Since(st.FinishedAt)))
	}
	return "Created"
}

// PruneResult is what container prune removed.
type PruneResult struct {
	Deleted   []string
	Reclaimed uint64
}

// Prune removes stopped containers that match the filters (label,
// label!, until).
func (e *Engine) Prune(ctx context.Context, filters map[string][]string) (PruneResult, error) {
	var res PruneResult
	var until time.Time
	for k, v := range filters {
		switch k {
		case "label", "label!":
		case "until":
			if len(v) > 0 {
				t, err := parseUntil(v[0])
				if err != nil {
					return res, err
				}
				until = t
			}
		default:
			return res, errdefs.Invalidf("invalid filter '%s'", k)
		}
	}
	for _, c := range e.all() {
		c.mu.Lock()
		ok := !c.State.running() && c.State.Status != container.StateRemoving
		if ok && !until.IsZero() && !c.Created.Before(until) {
			ok = false
		}
		if !LabelsMatch(c.Config.Labels, filters["label"], filters["label!"]) {
			ok = false
		}
		size := dirSize(filepath.Join(c.dir, "rw", "upper"))
		c.mu.Unlock()
		if !ok {
			continue
		}
		if err := e.Remove(ctx, c.ID, RemoveOptions{}); err != nil {
			continue
		}
		res.Deleted = append(res.Deleted, c.ID)
		res.Reclaimed += uint64(size)
	}
	return res, nil
}

// LabelsMatch applies prune's label (all must match) and label! (none may
// match) filters; each is key or key=value.
func LabelsMatch(labels map[string]string, want, notWant []string) bool {
	has := func(l string) bool {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := labels[k]
		return ok && (!hasValue || got == v)
	}
	for _, l := range want {
		if !has(l) {
			return false
		}
	}
	for _, l := range notWant {
		if has(l) {
			return false
		}
	}
	return true
}

// ParseUntil is parseUntil for the API's prune filters.
func ParseUntil(v string) (time.Time, error) { return parseUntil(v) }

// parseUntil takes Docker's until: a Unix timestamp, an RFC 3339 time or a
// duration before now.
func parseUntil(v string) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Unix(int64(f), 0), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errdefs.Invalidf("invalid until %q: want a timestamp, a date or a duration", v)
}

// ContainerDiskUsage lists each container's size for system df: its
// writable layer plus its logs (rotated files included), since logs are
// disk the container uses (Docker leaves them out, and they surprise).
func (e *Engine) ContainerDiskUsage(ctx context.Context) ([]container.Summary, error) {
	list, err := e.List(ctx, ListOptions{All: true, Size: true})
	if err != nil {
		return nil, err
	}
	for i := range list {
		if n, err := logs.Size(filepath.Join(e.containerDir(list[i].ID), list[i].ID+"-json.log")); err == nil {
			list[i].SizeRw += n
			list[i].SizeRootFs += n
		}
	}
	return list, nil
}

// StatsTarget is what the stats endpoint reads for a container: its cgroup
// (relative to each hierarchy's root, e.g. "/berth/<id>") and its init's
// pid (for /proc/<pid>/net/dev: the container's network namespace).
type StatsTarget struct {
	ID, Name   string
	CgroupPath string
	Pid        int
	Running    bool
	// Networks names the container's interfaces in its namespace by the
	// network they belong to ("eth0" -> "bridge"), for the networks key.
	Networks map[string]string
}

// StatsTarget finds a container for stats.
func (e *Engine) StatsTarget(ref string) (StatsTarget, error) {
	c, err := e.Get(ref)
	if err != nil {
		return StatsTarget{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := StatsTarget{ID: c.ID, Name: c.Name, CgroupPath: cgroupPath(c), Pid: c.State.Pid, Running: c.State.Status == container.StateRunning || c.State.Status == container.StatePaused}
	if e.networkingEnabled() && t.Running && usesSandbox(c.HostConfig) {
		t.Networks = map[string]string{}
		for _, ep := range e.o.Networks.ContainerEndpoints(c.ID) {
			t.Networks[ep.IfName] = ep.NetworkName
		}
	}
	return t, nil
}
