package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/container"
)

const webID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// webFrame is a frame with round numbers: 20% CPU of two CPUs, 94 MiB of
// 1 GiB after 6 MiB of inactive file cache, 1.5 kB / 2.5 MB network,
// 4.1 kB / 1.05 MB disk, 3 pids.
var webFrame = container.StatsResponse{
	ID: webID, Name: "/web",
	PreCPUStats: container.CPUStats{CPUUsage: container.CPUUsage{TotalUsage: 1e9}, SystemUsage: 10e9},
	CPUStats:    container.CPUStats{CPUUsage: container.CPUUsage{TotalUsage: 2e9}, SystemUsage: 20e9, OnlineCPUs: 2},
	MemoryStats: container.MemoryStats{Usage: 100 << 20, Limit: 1 << 30, Stats: map[string]uint64{"total_inactive_file": 6 << 20}},
	Networks: map[string]container.NetworkStats{
		"eth0": {RxBytes: 1000, TxBytes: 2000000},
		"eth1": {RxBytes: 500, TxBytes: 500000},
	},
	BlkioStats: container.BlkioStats{IoServiceBytesRecursive: []container.BlkioStatEntry{
		{Major: 8, Op: "Read", Value: 4096}, {Major: 8, Op: "Write", Value: 1 << 20}, {Major: 8, Op: "Total", Value: 4096 + 1<<20},
	}},
	PidsStats: container.PidsStats{Current: 3},
}

// statsRoutes answers the container list and, for web and db, one frame
// (or one per 10ms while streaming).
func statsRoutes() map[string]http.HandlerFunc {
	dbFrame := container.StatsResponse{ID: "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210", Name: "/db"}
	frames := func(v container.StatsResponse) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.Encode(v)
			if r.URL.Query().Get("stream") == "false" {
				return
			}
			for {
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(10 * time.Millisecond):
				}
				if enc.Encode(v) != nil {
					return
				}
			}
		}
	}
	return map[string]http.HandlerFunc{
		"GET /containers/json":                          reply(200, []container.Summary{{ID: webID, Names: []string{"/web"}}, {ID: dbFrame.ID, Names: []string{"/db"}}}),
		"GET /containers/web/stats":                     frames(webFrame),
		"GET /containers/" + webID + "/stats":           frames(webFrame),
		"GET /containers/" + webID[:12] + "/stats":      frames(webFrame),
		"GET /containers/" + dbFrame.ID[:12] + "/stats": frames(dbFrame),
		"GET /containers/nosuch/stats":                  reply(404, map[string]string{"message": "No such container: nosuch"}),
	}
}

func TestStatsNoStream(t *testing.T) {
	d := newFakeDaemon(t, statsRoutes())
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"stats", "--no-stream", "web"}, `
CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O         BLOCK I/O        PIDS
0123456789ab   web       20.00%    94MiB / 1GiB        9.18%     1.5kB / 2.5MB   4.1kB / 1.05MB   3
`},
		{[]string{"container", "stats", "--no-stream", "--no-trunc", "--format", "table {{.ID}}\t{{.Container}}", "web"}, `
CONTAINER ID                                                       CONTAINER
` + webID + `   web
`},
		{[]string{"stats", "--no-stream", "--format", "{{.Name}}: {{.CPUPerc}} {{.MemPerc}} {{.PIDs}}", "web"}, `
web: 20.00% 9.18% 3
`},
		{[]string{"stats", "--no-stream", "--format", "json", "web"}, `
{"BlockIO":"4.1kB / 1.05MB","CPUPerc":"20.00%","Container":"web","ID":"0123456789ab","MemPerc":"9.18%","MemUsage":"94MiB / 1GiB","Name":"web","NetIO":"1.5kB / 2.5MB","PIDs":"3"}
`},
		// No names: the running containers, by short ID.
		{[]string{"stats", "--no-stream", "--format", "table {{.Container}}\t{{.Name}}\t{{.MemUsage}}"}, `
CONTAINER      NAME      MEM USAGE / LIMIT
0123456789ab   web       94MiB / 1GiB
fedcba987654   db        0B / 0B
`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, stderr, code := run(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if diff := cmp.Diff(strings.TrimPrefix(tt.want, "\n"), out); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
		})
	}
	// --no-stream asks for two samples (stream=false, no one-shot), as
	// docker does, so that CPU % has a previous sample.
	for _, r := range d.sent("GET /containers/") {
		if strings.Contains(r, "/stats?") && !strings.HasSuffix(r, "?stream=false") {
			t.Errorf("request %s, want ?stream=false", r)
		}
	}
	if got := d.sent("GET /containers/json"); len(got) != 1 || got[0] != "GET /containers/json?" {
		t.Errorf("container lists %q, want one of running containers", got)
	}
}

func TestStatsAll(t *testing.T) {
	d := newFakeDaemon(t, statsRoutes())
	if _, stderr, code := run(t, "stats", "-a", "--no-stream"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := d.sent("GET /containers/json"); len(got) != 1 || !strings.Contains(got[0], "all=1") {
		t.Errorf("container lists %q, want all=1", got)
	}
}

func TestStatsNoSuchContainer(t *testing.T) {
	newFakeDaemon(t, statsRoutes())
	out, stderr, code := run(t, "stats", "--no-stream", "web", "nosuch")
	if code != 1 || out != "" || !strings.Contains(stderr, "No such container: nosuch") {
		t.Errorf("stats nosuch = exit %d, stdout %q, stderr %q; want 1, nothing, No such container", code, out, stderr)
	}
}

// TestStatsStream: tables follow each other without a terminal, and
// redraw in place on one.
func TestStatsStream(t *testing.T) {
	newFakeDaemon(t, statsRoutes())
	for _, tty := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		var out bytes.Buffer
		g := &globals{stdout: &out, stderr: &out}
		err := runStats(ctx, g, &out, statsOptions{containers: []string{"web"}, tty: tty, refresh: 50 * time.Millisecond,
			format: "table {{.Name}}\t{{.CPUPerc}}"})
		cancel()
		g.api.Close()
		if err != nil {
			t.Fatalf("tty=%v: runStats: %v", tty, err)
		}
		table := "NAME      CPU %\nweb       20.00%\n"
		n := strings.Count(out.String(), table)
		if n < 2 {
			t.Errorf("tty=%v: %d tables, want several:\n%q", tty, n, out.String())
		}
		clears := strings.Count(out.String(), "\033[2J\033[H"+table)
		if tty && clears != n || !tty && clears != 0 {
			t.Errorf("tty=%v: %d of %d tables after a screen clear", tty, clears, n)
		}
	}
}

// TestStatsFollow: without names, rows follow the container list.
func TestStatsFollow(t *testing.T) {
	routes := statsRoutes()
	var mu sync.Mutex
	lists := 0
	routes["GET /containers/json"] = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lists++
		n := lists
		mu.Unlock()
		list := []container.Summary{{ID: webID}}
		if n == 1 {
			// db runs at first, then stops.
			list = append(list, container.Summary{ID: "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"})
		}
		reply(200, list)(w, r)
	}
	newFakeDaemon(t, routes)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	g := &globals{stdout: &out, stderr: &out}
	err := runStats(ctx, g, &out, statsOptions{refresh: 30 * time.Millisecond, poll: 30 * time.Millisecond, format: "{{.Name}}"})
	g.api.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "web\ndb\nweb\n") || !strings.HasSuffix(out.String(), "web\nweb\n") {
		t.Errorf("output %q, want web and db, then web alone", out.String())
	}
}

func TestCPUPercent(t *testing.T) {
	cpu := func(total, system uint64, online uint32, percpu int) container.CPUStats {
		return container.CPUStats{CPUUsage: container.CPUUsage{TotalUsage: total, PercpuUsage: make([]uint64, percpu)}, SystemUsage: system, OnlineCPUs: online}
	}
	tests := []struct {
		name      string
		prev, cur container.CPUStats
		want      float64
	}{
		{"one busy CPU of four", cpu(0, 0, 4, 0), cpu(1e9, 4e9, 4, 0), 100},
		{"half a CPU of two", cpu(1e9, 10e9, 2, 0), cpu(1.5e9, 12e9, 2, 0), 50},
		{"online from percpu", cpu(0, 0, 0, 0), cpu(1e9, 8e9, 0, 8), 100},
		{"no previous sample", container.CPUStats{}, cpu(3e9, 300e9, 2, 0), 2},
		{"idle", cpu(5, 10, 2, 0), cpu(5, 20, 2, 0), 0},
		{"no system delta", cpu(5, 10, 2, 0), cpu(9, 10, 2, 0), 0},
		{"counter reset", cpu(9e9, 10e9, 2, 0), cpu(1e9, 20e9, 2, 0), 0},
		{"stopped", container.CPUStats{}, container.CPUStats{}, 0},
	}
	for _, tt := range tests {
		if got := cpuPercent(tt.prev, tt.cur); got != tt.want {
			t.Errorf("%s: cpuPercent = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestMemUsage(t *testing.T) {
	tests := []struct {
		name string
		m    container.MemoryStats
		want float64
	}{
		{"v1", container.MemoryStats{Usage: 100, Stats: map[string]uint64{"total_inactive_file": 30, "inactive_file": 10}}, 70},
		{"v2", container.MemoryStats{Usage: 100, Stats: map[string]uint64{"inactive_file": 10}}, 90},
		{"no stats", container.MemoryStats{Usage: 100}, 100},
		{"cache above usage", container.MemoryStats{Usage: 100, Stats: map[string]uint64{"total_inactive_file": 200}}, 100},
		{"stopped", container.MemoryStats{}, 0},
	}
	for _, tt := range tests {
		if got := memUsage(tt.m); got != tt.want {
			t.Errorf("%s: memUsage = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestStatsRow(t *testing.T) {
	v := valuesOf(webFrame)
	got := statsRowOf("web", v, true, true)
	want := statsRow{Container: "web", ID: "0123456789ab", Name: "web", CPUPerc: "--", MemUsage: "-- / --", MemPerc: "--", NetIO: "--", BlockIO: "--", PIDs: "--"}
	if got != want {
		t.Errorf("invalid row = %+v, want %+v", got, want)
	}
	// Before any frame: no name yet.
	if got := statsRowOf("x", statsValues{}, false, true); got.Name != "--" || got.ID != "" || got.MemUsage != "0B / 0B" || got.CPUPerc != "0.00%" {
		t.Errorf("empty row = %+v", got)
	}
	// v2 block I/O ops are lower case.
	r, w := blockIO(container.BlkioStats{IoServiceBytesRecursive: []container.BlkioStatEntry{{Op: "read", Value: 1}, {Op: "write", Value: 2}, {Op: "read", Value: 3}, {Op: ""}}})
	if r != 4 || w != 2 {
		t.Errorf("blockIO = %d, %d, want 4, 2", r, w)
	}
}
