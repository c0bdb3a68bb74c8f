package events

import (
	"testing"

	"github.com/moby/moby/api/types/events"

	"github.com/berth-dev/berth/internal/errdefs"
)

func msg(typ events.Type, action events.Action, id string, attrs ...string) events.Message {
	a := map[string]string{}
	for i := 0; i+1 < len(attrs); i += 2 {
		a[attrs[i]] = attrs[i+1]
	}
	return events.Message{Type: typ, Action: action, Actor: events.Actor{ID: id, Attributes: a}, Scope: "local"}
}

func TestFilter(t *testing.T) {
	const cid = "0123abcd4567ef890123abcd4567ef890123abcd4567ef890123abcd4567ef89"
	start := msg(events.ContainerEventType, events.ActionStart, cid, "image", "busybox:latest", "name", "web", "com.example.team", "core")
	healthy := msg(events.ContainerEventType, events.ActionHealthStatusHealthy, cid, "image", "busybox", "name", "web")
	execStart := msg(events.ContainerEventType, "exec_start: sh -c true", cid, "name", "web", "execID", "e1")
	pull := msg(events.ImageEventType, events.ActionPull, "docker.io/library/busybox:1.36", "name", "docker.io/library/busybox")
	tag := msg(events.ImageEventType, events.ActionTag, "sha256:aaaa", "name", "example.com/app:v1")
	vol := msg(events.VolumeEventType, events.ActionCreate, "web-data", "driver", "local")
	connect := msg(events.NetworkEventType, events.ActionConnect, "netid123", "container", cid, "name", "appnet", "type", "bridge")
	reload := msg(events.DaemonEventType, events.ActionReload, "daemonid", "name", "host1")

	tests := []struct {
		name    string
		filters map[string][]string
		m       events.Message
		want    bool
	}{
		{"no filters", nil, start, true},
		{"empty value list", map[string][]string{"type": {}}, start, true},
		{"type", map[string][]string{"type": {"container"}}, start, true},
		{"type other", map[string][]string{"type": {"image"}}, start, false},
		{"type ORed", map[string][]string{"type": {"image", "container"}}, start, true},
		{"keys ANDed", map[string][]string{"type": {"container"}, "event": {"stop"}}, start, false},
		{"event", map[string][]string{"event": {"start"}}, start, true},
		{"event exact", map[string][]string{"event": {"sta"}}, start, false},
		{"health_status bare matches detail", map[string][]string{"event": {"health_status"}}, healthy, true},
		{"health_status with detail", map[string][]string{"event": {"health_status: healthy"}}, healthy, true},
		{"health_status other detail", map[string][]string{"event": {"health_status: unhealthy"}}, healthy, false},
		{"health_status bare not start", map[string][]string{"event": {"health_status"}}, start, false},
		{"exec_start bare", map[string][]string{"event": {"exec_start"}}, execStart, true},
		{"container full ID", map[string][]string{"container": {cid}}, start, true},
		{"container ID prefix", map[string][]string{"container": {"0123ab"}}, start, true},
		{"container name", map[string][]string{"container": {"web"}}, start, true},
		{"container other", map[string][]string{"container": {"db"}}, start, false},
		{"container name prefix matches any type", map[string][]string{"container": {"web"}}, vol, true},
		{"container filter on a network event", map[string][]string{"container": {"web"}}, connect, false},
		{"image by container's image", map[string][]string{"image": {"busybox:latest"}}, start, true},
		{"image without tag", map[string][]string{"image": {"busybox"}}, start, true},
		{"image other tag", map[string][]string{"image": {"busybox:1.36"}}, start, false},
		{"image event by ID", map[string][]string{"image": {"sha256:aaaa"}}, tag, true},
		{"image event by name", map[string][]string{"image": {"example.com/app:v1"}}, tag, true},
		{"image event by repository", map[string][]string{"image": {"example.com/app"}}, tag, true},
		{"image event familiar name", map[string][]string{"image": {"busybox"}}, pull, true},
		{"image event other", map[string][]string{"image": {"alpine"}}, pull, false},
		{"image filter on a volume", map[string][]string{"image": {"busybox"}}, vol, false},
		{"label key", map[string][]string{"label": {"com.example.team"}}, start, true},
		{"label key=value", map[string][]string{"label": {"com.example.team=core"}}, start, true},
		{"label other value", map[string][]string{"label": {"com.example.team=web"}}, start, false},
		{"labels ANDed", map[string][]string{"label": {"com.example.team", "missing"}}, start, false},
		{"label on an actor without it", map[string][]string{"label": {"com.example.team"}}, vol, false},
		{"volume", map[string][]string{"volume": {"web-data"}}, vol, true},
		{"volume prefix", map[string][]string{"volume": {"web"}}, vol, true},
		{"volume other", map[string][]string{"volume": {"db"}}, vol, false},
		{"network by name", map[string][]string{"network": {"appnet"}}, connect, true},
		{"network by ID", map[string][]string{"network": {"netid"}}, connect, true},
		{"network other", map[string][]string{"network": {"other"}}, connect, false},
		{"daemon by name", map[string][]string{"daemon": {"host1"}}, reload, true},
		{"daemon by ID", map[string][]string{"daemon": {"daemonid"}}, reload, true},
		{"scope local", map[string][]string{"scope": {"local"}}, start, true},
		{"scope swarm", map[string][]string{"scope": {"swarm"}}, start, false},
		{"service matches nothing of berth's", map[string][]string{"service": {"x"}}, start, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			match, err := Filter(tt.filters)
			if err != nil {
				t.Fatalf("Filter(%v): %v", tt.filters, err)
			}
			if got := match(tt.m); got != tt.want {
				t.Errorf("Filter(%v)(%s %s %s) = %v, want %v", tt.filters, tt.m.Type, tt.m.Action, tt.m.Actor.ID, got, tt.want)
			}
		})
	}
}

func TestFilterErrors(t *testing.T) {
	for _, f := range []map[string][]string{
		{"bogus": {"1"}},
		{"type": {"container"}, "until": {"1h"}},
		{"Container": {"web"}},
	} {
		_, err := Filter(f)
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("Filter(%v) = %v, want an invalid argument", f, err)
		}
	}
	_, err := Filter(map[string][]string{"zzz": {"1"}, "aaa": {"1"}})
	if err == nil || err.Error() != "invalid filter 'aaa'" {
		t.Errorf("Filter with two bad keys = %v, want invalid filter 'aaa'", err)
	}
}
