package dockerapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/stats"
)

// statsInterval is how often a stats stream samples, as dockerd's
// collector does.
const statsInterval = time.Second

// statsHandler serves GET /containers/{id}/stats. Its fields are seams so
// that tests run it without an engine or cgroups.
type statsHandler struct {
	// target finds a container (engine.Engine.StatsTarget).
	target func(ref string) (engine.StatsTarget, error)
	// sample reads a container's counters now.
	sample func(engine.StatsTarget) (container.StatsResponse, error)
	// interval separates samples in a stream, and the two samples of a
	// non-streaming answer.
	interval time.Duration
}

func (s *Server) statsRoutes(mux *http.ServeMux) {
	if s.Containers == nil {
		return
	}
	h := &statsHandler{target: s.Containers.StatsTarget, sample: readerSample(stats.NewReader()), interval: statsInterval}
	mux.Handle("GET /containers/{id}/stats", route(h.serve))
}

// readerSample samples a target with r. A container that is not running
// has no counters: dockerd sends an empty sample for it.
func readerSample(r *stats.Reader) func(engine.StatsTarget) (container.StatsResponse, error) {
	return func(t engine.StatsTarget) (container.StatsResponse, error) {
		if !t.Running {
			return container.StatsResponse{}, nil
		}
		// Networks is nil unless the container has a network namespace of
		// its own; the host's counters are not the container's.
		pid := 0
		if t.Networks != nil {
			pid = t.Pid
		}
		return r.Sample(t.CgroupPath, pid)
	}
}

// statsQuery reads Docker's stream (default true) and one-shot (API 1.41+,
// only without stream) parameters.
func statsQuery(r *http.Request) (stream, oneShot bool, err error) {
	stream = true
	if _, ok := r.Form["stream"]; ok {
		stream = BoolValue(r, "stream")
	}
	if VersionAtLeast(r.Context(), "1.41") {
		oneShot = BoolValue(r, "one-shot")
	}
	if stream && oneShot {
		return false, false, errdefs.Invalidf("cannot have stream=true and one-shot=true")
	}
	return stream, oneShot, nil
}

// statsSeries turns samples into the frames of one response: each frame
// carries the previous one's CPU counters and time (precpu_stats,
// preread), so a client computes CPU % from a single frame.
type statsSeries struct {
	preCPU  container.CPUStats
	preRead time.Time
}

// next is the frame for sample s of container t.
func (ser *statsSeries) next(t engine.StatsTarget, s container.StatsResponse) container.StatsResponse {
	s.ID, s.Name = t.ID, "/"+t.Name
	s.PreCPUStats, s.PreRead = ser.preCPU, ser.preRead
	ser.preCPU, ser.preRead = s.CPUStats, s.Read
	return s
}

// serve answers as dockerd does:
//
//   - stream (the default): a frame now, then one per interval until the
//     client leaves or the container is removed; a stopped container's
//     frames are empty but for its name and ID.
//   - stream=false: two samples an interval apart, the second sent with
//     the first as its precpu_stats; at once, empty, for a stopped
//     container.
//   - stream=false&one-shot=true: one sample at once, no precpu_stats.
func (h *statsHandler) serve(w http.ResponseWriter, r *http.Request) error {
	stream, oneShot, err := statsQuery(r)
	if err != nil {
		return err
	}
	t, err := h.target(r.PathValue("id"))
	if err != nil {
		return err
	}
	// Errors before the first frame get a status; after it, the stream
	// just ends.
	s, err := h.sample(t)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(frame container.StatsResponse) bool {
		if err := enc.Encode(frame); err != nil {
			return false
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		return true
	}
	var ser statsSeries
	if !stream && (oneShot || !t.Running) {
		send(ser.next(t, s))
		return nil
	}
	frame := ser.next(t, s)
	if stream && !send(frame) {
		return nil
	}
	tick := time.NewTicker(h.interval)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-tick.C:
		}
		// Look the container up again: it may have stopped, restarted
		// with another pid, or been removed (which ends the stream, as
		// dockerd closes it).
		id := t.ID
		if t, err = h.target(id); err != nil {
			if !errdefs.IsNotFound(err) {
				slog.Warn("stats stream ended", "container", id, "err", err)
			}
			return nil
		}
		if s, err = h.sample(t); err != nil {
			// dockerd's collector sends an empty sample when one fails.
			slog.Debug("sampling container stats", "container", id, "err", err)
			s = container.StatsResponse{}
		}
		if !send(ser.next(t, s)) || !stream {
			return nil
		}
	}
}
