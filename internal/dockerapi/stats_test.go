package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/stats"
)

// fakeStats is a container registry and a sampler whose CPU counters
// grow by 100 ns (system: 1000 ns) per sample.
type fakeStats struct {
	mu      sync.Mutex
	targets map[string]engine.StatsTarget // by ID
	n       uint64
}

func (f *fakeStats) target(ref string) (engine.StatsTarget, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.targets {
		if t.ID == ref || t.Name == ref {
			return t, nil
		}
	}
	return engine.StatsTarget{}, errdefs.NotFoundf("No such container: %s", ref)
}

func (f *fakeStats) sample(t engine.StatsTarget) (container.StatsResponse, error) {
	if !t.Running {
		return container.StatsResponse{}, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return container.StatsResponse{
		Read:        time.Unix(int64(f.n), 0).UTC(),
		CPUStats:    container.CPUStats{CPUUsage: container.CPUUsage{TotalUsage: 100 * f.n}, SystemUsage: 1000 * f.n, OnlineCPUs: 2},
		MemoryStats: container.MemoryStats{Usage: 4096, Limit: 8192},
	}, nil
}

func (f *fakeStats) remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.targets, id)
}

// statsServer serves the stats route alone over fake containers "web"
// (running) and "idle" (stopped).
func statsServer(t *testing.T) (*fakeStats, http.Handler) {
	f := &fakeStats{targets: map[string]engine.StatsTarget{
		"c1": {ID: "c1", Name: "web", CgroupPath: "/berth/c1", Pid: 42, Running: true},
		"c2": {ID: "c2", Name: "idle", CgroupPath: "/berth/c2"},
	}}
	h := &statsHandler{target: f.target, sample: f.sample, interval: 10 * time.Millisecond}
	mux := http.NewServeMux()
	mux.Handle("GET /containers/{id}/stats", route(h.serve))
	return f, (&Server{}).versioned(mux)
}

// frames decodes a stream of stats objects.
func frames(t *testing.T, r io.Reader) []container.StatsResponse {
	t.Helper()
	var out []container.StatsResponse
	dec := json.NewDecoder(r)
	for {
		var v container.StatsResponse
		if err := dec.Decode(&v); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("decoding frame %d: %v", len(out), err)
			}
			return out
		}
		out = append(out, v)
	}
}

func cpu(total, system uint64) container.CPUStats {
	return container.CPUStats{CPUUsage: container.CPUUsage{TotalUsage: total}, SystemUsage: system, OnlineCPUs: 2}
}

func TestStatsNoStream(t *testing.T) {
	tests := []struct {
		path string
		want container.StatsResponse
	}{
		// Two samples: the first becomes precpu_stats.
		{"/containers/web/stats?stream=false", container.StatsResponse{
			ID: "c1", Name: "/web", Read: time.Unix(2, 0).UTC(), PreRead: time.Unix(1, 0).UTC(),
			CPUStats: cpu(200, 2000), PreCPUStats: cpu(100, 1000), MemoryStats: container.MemoryStats{Usage: 4096, Limit: 8192},
		}},
		{"/v1.50/containers/c1/stats?stream=0&one-shot=1", container.StatsResponse{
			ID: "c1", Name: "/web", Read: time.Unix(1, 0).UTC(), CPUStats: cpu(100, 1000), MemoryStats: container.MemoryStats{Usage: 4096, Limit: 8192},
		}},
		// Before 1.41 one-shot does not exist: two samples again.
		{"/v1.40/containers/web/stats?stream=0&one-shot=1", container.StatsResponse{
			ID: "c1", Name: "/web", Read: time.Unix(2, 0).UTC(), PreRead: time.Unix(1, 0).UTC(),
			CPUStats: cpu(200, 2000), PreCPUStats: cpu(100, 1000), MemoryStats: container.MemoryStats{Usage: 4096, Limit: 8192},
		}},
		// A stopped container: its name and ID, at once.
		{"/containers/idle/stats?stream=false", container.StatsResponse{ID: "c2", Name: "/idle"}},
		{"/containers/idle/stats?stream=false&one-shot=true", container.StatsResponse{ID: "c2", Name: "/idle"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, h := statsServer(t)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
			wantStatus(t, rec, http.StatusOK)
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			got := frames(t, rec.Body)
			if len(got) != 1 {
				t.Fatalf("got %d frames, want 1: %s", len(got), rec.Body.String())
			}
			if diff := cmp.Diff(tt.want, got[0]); diff != "" {
				t.Errorf("frame mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatsErrors(t *testing.T) {
	tests := []struct {
		path string
		code int
		msg  string
	}{
		{"/containers/nosuch/stats", http.StatusNotFound, "No such container: nosuch"},
		{"/containers/web/stats?one-shot=1", http.StatusBadRequest, "cannot have stream=true and one-shot=true"},
		{"/containers/web/stats?stream=1&one-shot=1", http.StatusBadRequest, "cannot have stream=true and one-shot=true"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, h := statsServer(t)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
			wantStatus(t, rec, tt.code)
			var body errorBody
			decode(t, rec, &body)
			if body.Message != tt.msg {
				t.Errorf("message %q, want %q", body.Message, tt.msg)
			}
		})
	}
}

// TestStatsStream: frames chain their precpu_stats, and removing the
// container ends the stream.
func TestStatsStream(t *testing.T) {
	f, h := statsServer(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/containers/web/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var got []container.StatsResponse
	for len(got) < 3 {
		var v container.StatsResponse
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("frame %d: %v", len(got), err)
		}
		got = append(got, v)
	}
	f.remove("c1")
	rest := frames(t, io.MultiReader(dec.Buffered(), resp.Body)) // ends: the stream closed
	got = append(got, rest...)
	for i, fr := range got {
		n := uint64(i + 1)
		if fr.ID != "c1" || fr.Name != "/web" {
			t.Errorf("frame %d: id %q name %q, want c1 /web", i, fr.ID, fr.Name)
		}
		if fr.CPUStats.CPUUsage.TotalUsage != 100*n || fr.PreCPUStats.CPUUsage.TotalUsage != 100*(n-1) {
			t.Errorf("frame %d: cpu %d precpu %d, want %d %d", i, fr.CPUStats.CPUUsage.TotalUsage, fr.PreCPUStats.CPUUsage.TotalUsage, 100*n, 100*(n-1))
		}
		if !fr.PreRead.Equal(time.Unix(int64(n-1), 0)) && n > 1 {
			t.Errorf("frame %d: preread %v, want %v", i, fr.PreRead, time.Unix(int64(n-1), 0))
		}
	}
	if !got[0].PreRead.IsZero() || got[0].PreCPUStats.SystemUsage != 0 {
		t.Errorf("first frame has a previous sample: %+v", got[0])
	}
}

// TestStatsStreamStopped: a stopped container streams empty frames (as
// dockerd's collector does) until the client leaves.
func TestStatsStreamStopped(t *testing.T) {
	_, h := statsServer(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/containers/idle/stats?stream=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for i := range 2 {
		var v container.StatsResponse
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if diff := cmp.Diff(container.StatsResponse{ID: "c2", Name: "/idle"}, v); diff != "" {
			t.Errorf("frame %d mismatch (-want +got):\n%s", i, diff)
		}
	}
}

func TestStatsSeries(t *testing.T) {
	var ser statsSeries
	tgt := engine.StatsTarget{ID: "abc", Name: "web"}
	t1, t2 := time.Unix(10, 0), time.Unix(11, 0)
	first := ser.next(tgt, container.StatsResponse{Read: t1, CPUStats: cpu(5, 50)})
	second := ser.next(tgt, container.StatsResponse{Read: t2, CPUStats: cpu(7, 90)})
	want := []container.StatsResponse{
		{ID: "abc", Name: "/web", Read: t1, CPUStats: cpu(5, 50)},
		{ID: "abc", Name: "/web", Read: t2, PreRead: t1, CPUStats: cpu(7, 90), PreCPUStats: cpu(5, 50)},
	}
	if diff := cmp.Diff(want, []container.StatsResponse{first, second}); diff != "" {
		t.Errorf("frames mismatch (-want +got):\n%s", diff)
	}
}

// TestReaderSample: a stopped container is not read at all; a running
// one without a network namespace of its own gets no network counters.
func TestReaderSample(t *testing.T) {
	sample := readerSample(stats.NewReader())
	got, err := sample(engine.StatsTarget{ID: "x", CgroupPath: "/berth/x", Pid: 1})
	if err != nil || !cmp.Equal(got, container.StatsResponse{}) {
		t.Errorf("sample(stopped) = %+v, %v; want zero", got, err)
	}
	got, err = sample(engine.StatsTarget{ID: "x", CgroupPath: "/berth/no-such-container", Pid: 1, Running: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Networks != nil || got.Read.IsZero() {
		t.Errorf("sample(host network) = networks %v, read %v; want none, now", got.Networks, got.Read)
	}
}
