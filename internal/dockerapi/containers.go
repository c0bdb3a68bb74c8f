package dockerapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/logs"
)

// ContainerBackend is the container engine. It is the one implementation,
// so no interface: handlers call it directly.
type ContainerBackend = *engine.Engine

func (s *Server) containerRoutes(mux *http.ServeMux) {
	if s.Containers == nil {
		return
	}
	mux.Handle("GET /containers/json", route(s.containerList))
	mux.Handle("POST /containers/create", route(s.containerCreate))
	mux.Handle("POST /containers/prune", route(s.containerPrune))
	mux.Handle("GET /containers/{id}/json", route(s.containerInspect))
	mux.Handle("GET /containers/{id}/top", route(s.containerTop))
	mux.Handle("GET /containers/{id}/logs", route(s.containerLogs))
	mux.Handle("GET /containers/{id}/export", route(s.containerExport))
	mux.Handle("POST /containers/{id}/resize", route(s.containerResize))
	mux.Handle("POST /containers/{id}/start", route(s.containerStart))
	mux.Handle("POST /containers/{id}/stop", route(s.containerStop))
	mux.Handle("POST /containers/{id}/restart", route(s.containerRestart))
	mux.Handle("POST /containers/{id}/kill", route(s.containerKill))
	mux.Handle("POST /containers/{id}/update", route(s.containerUpdate))
	mux.Handle("POST /containers/{id}/rename", route(s.containerRename))
	mux.Handle("POST /containers/{id}/pause", route(s.containerPause))
	mux.Handle("POST /containers/{id}/unpause", route(s.containerUnpause))
	mux.Handle("POST /containers/{id}/attach", route(s.containerAttach))
	mux.Handle("POST /containers/{id}/wait", route(s.containerWait))
	mux.Handle("DELETE /containers/{id}", route(s.containerDelete))
	mux.Handle("HEAD /containers/{id}/archive", route(s.containerArchiveHead))
	mux.Handle("GET /containers/{id}/archive", route(s.containerArchiveGet))
	mux.Handle("PUT /containers/{id}/archive", route(s.containerArchivePut))
	mux.Handle("POST /containers/{id}/exec", route(s.execCreate))
	mux.Handle("POST /exec/{id}/start", route(s.execStart))
	mux.Handle("POST /exec/{id}/resize", route(s.execResize))
	mux.Handle("GET /exec/{id}/json", route(s.execInspect))
}

func (s *Server) containerList(w http.ResponseWriter, r *http.Request) error {
	f, err := ParseFilters(r)
	if err != nil {
		return err
	}
	limit := 0
	if v := r.Form.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil {
			return errdefs.Invalidf("invalid limit %q", v)
		}
	}
	list, err := s.Containers.List(r.Context(), engine.ListOptions{
		All: BoolValue(r, "all"), Limit: limit, Size: BoolValue(r, "size"), Filters: f,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) containerCreate(w http.ResponseWriter, r *http.Request) error {
	var req container.CreateRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Config == nil {
		return errdefs.Invalidf("config cannot be empty in order to create a container")
	}
	c, warnings, err := s.Containers.Create(r.Context(), engine.CreateOptions{
		Name: r.Form.Get("name"), Config: req.Config, HostConfig: req.HostConfig,
		Networking: req.NetworkingConfig, Platform: r.Form.Get("platform"),
	})
	if err != nil {
		return err
	}
	if warnings == nil {
		warnings = []string{}
	}
	writeJSON(w, http.StatusCreated, container.CreateResponse{ID: c.ID, Warnings: warnings})
	return nil
}

func (s *Server) containerPrune(w http.ResponseWriter, r *http.Request) error {
	f, err := ParseFilters(r)
	if err != nil {
		return err
	}
	res, err := s.Containers.Prune(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, container.PruneReport{ContainersDeleted: res.Deleted, SpaceReclaimed: res.Reclaimed})
	return nil
}

func (s *Server) containerInspect(w http.ResponseWriter, r *http.Request) error {
	ci, err := s.Containers.Inspect(r.Context(), r.PathValue("id"), BoolValue(r, "size"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ci)
	return nil
}

func (s *Server) containerTop(w http.ResponseWriter, r *http.Request) error {
	top, err := s.Containers.Top(r.Context(), r.PathValue("id"), r.Form.Get("ps_args"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, top)
	return nil
}

// parseTime takes Docker's since/until: Unix seconds with optional
// fraction, or RFC 3339.
func parseTime(v string) (time.Time, error) {
	if v == "" || v == "0" {
		return time.Time{}, nil
	}
	if t, ok := parseUnix(v); ok {
		return t, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, errdefs.Invalidf("invalid time %q: want Unix seconds, RFC 3339 or a duration", v)
}

// parseUnix reads "SECONDS[.FRACTION]" exactly, as the docker CLI sends
// it ("1700000000.123456789"): a float64 would lose the nanoseconds, and
// since and until compare to the nanosecond.
func parseUnix(v string) (time.Time, bool) {
	secs, frac, hasFrac := strings.Cut(v, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || strings.HasPrefix(secs, "+") || (hasFrac && (frac == "" || strings.HasPrefix(secs, "-"))) {
		return time.Time{}, false
	}
	var nsec int64
	if hasFrac {
		if strings.Trim(frac, "0123456789") != "" {
			return time.Time{}, false
		}
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n, err := strconv.ParseUint(frac, 10, 32)
		if err != nil {
			return time.Time{}, false
		}
		nsec = int64(n)
		for range 9 - len(frac) {
			nsec *= 10
		}
	}
	return time.Unix(sec, nsec), true
}

func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	o := engine.LogsOptions{Follow: BoolValue(r, "follow"), Stdout: BoolValue(r, "stdout"), Stderr: BoolValue(r, "stderr"), Tail: -1}
	if !o.Stdout && !o.Stderr {
		return errdefs.Invalidf("Bad parameters: you must choose at least one stream")
	}
	var err error
	if o.Since, err = parseTime(r.Form.Get("since")); err != nil {
		return err
	}
	if o.Until, err = parseTime(r.Form.Get("until")); err != nil {
		return err
	}
	if t := r.Form.Get("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return errdefs.Invalidf("invalid tail %q: want a number or all", t)
		}
		o.Tail = n
	}
	ci, err := s.Containers.Inspect(r.Context(), id, false)
	if err != nil {
		return err
	}
	tty := ci.Config.Tty
	timestamps := BoolValue(r, "timestamps")
	if tty {
		w.Header().Set("Content-Type", "application/vnd.docker.raw-stream")
	} else {
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
	}
	w.WriteHeader(http.StatusOK)
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	flush()
	var stdout, stderr io.Writer = w, w
	if !tty {
		mux := NewMux(w)
		stdout, stderr = mux.Stream(stdcopy.Stdout), mux.Stream(stdcopy.Stderr)
	}
	o.Write = func(en logs.Entry) error {
		out := stdout
		if en.Stream == "stderr" {
			out = stderr
		}
		line := en.Line
		if timestamps {
			line = append([]byte(en.Time.UTC().Format(time.RFC3339Nano)+" "), line...)
		}
		_, err := out.Write(line)
		if tty {
			flush()
		}
		return err
	}
	if err := s.Containers.Logs(r.Context(), id, o); err != nil && r.Context().Err() == nil {
		// Headers are out; the stream just ends.
		fmt.Fprintf(stderr, "error reading the log: %v\n", err)
	}
	return nil
}

func (s *Server) containerExport(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.Containers.Get(r.PathValue("id")); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	return s.Containers.Export(r.Context(), r.PathValue("id"), w)
}

func formInt(r *http.Request, key string) (int, error) {
	v := r.Form.Get(key)
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errdefs.Invalidf("invalid %s %q: want a number", key, v)
	}
	return n, nil
}

// sizeParams reads the h and w of a resize request.
func sizeParams(r *http.Request) (h, w int, err error) {
	if h, err = formInt(r, "h"); err != nil {
		return 0, 0, err
	}
	w, err = formInt(r, "w")
	return h, w, err
}

func (s *Server) containerResize(w http.ResponseWriter, r *http.Request) error {
	h, wd, err := sizeParams(r)
	if err != nil {
		return err
	}
	if err := s.Containers.Resize(r.Context(), r.PathValue("id"), h, wd); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) containerStart(w http.ResponseWriter, r *http.Request) error {
	if err := s.Containers.Start(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func stopOptions(r *http.Request) (engine.StopOptions, error) {
	o := engine.StopOptions{Signal: r.Form.Get("signal")}
	if v := r.Form.Get("t"); v != "" {
		t, err := strconv.Atoi(v)
		if err != nil {
			return o, errdefs.Invalidf("invalid timeout %q: want seconds", v)
		}
		o.Timeout = &t
	}
	return o, nil
}

func (s *Server) containerStop(w http.ResponseWriter, r *http.Request) error {
	o, err := stopOptions(r)
	if err != nil {
		return err
	}
	if err := s.Containers.Stop(r.Context(), r.PathValue("id"), o); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerRestart(w http.ResponseWriter, r *http.Request) error {
	o, err := stopOptions(r)
	if err != nil {
		return err
	}
	if err := s.Containers.Restart(r.Context(), r.PathValue("id"), o); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerKill(w http.ResponseWriter, r *http.Request) error {
	if err := s.Containers.Kill(r.Context(), r.PathValue("id"), r.Form.Get("signal")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerUpdate(w http.ResponseWriter, r *http.Request) error {
	var u container.UpdateConfig
	if err := DecodeJSON(r, &u); err != nil {
		return err
	}
	warnings, err := s.Containers.Update(r.Context(), r.PathValue("id"), u)
	if err != nil {
		return err
	}
	if warnings == nil {
		warnings = []string{}
	}
	writeJSON(w, http.StatusOK, container.UpdateResponse{Warnings: warnings})
	return nil
}

func (s *Server) containerRename(w http.ResponseWriter, r *http.Request) error {
	if err := s.Containers.Rename(r.Context(), r.PathValue("id"), r.Form.Get("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerPause(w http.ResponseWriter, r *http.Request) error {
	if err := s.Containers.Pause(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerUnpause(w http.ResponseWriter, r *http.Request) error {
	if err := s.Containers.Unpause(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// containerAttach hijacks the connection and joins it to the container's
// stdio until the container exits or the client goes away.
func (s *Server) containerAttach(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	ci, err := s.Containers.Inspect(r.Context(), id, false)
	if err != nil {
		return err
	}
	h, err := hijack(w, r, ci.Config.Tty)
	if err != nil {
		return err
	}
	defer h.conn.Close()
	o := engine.AttachOptions{Logs: BoolValue(r, "logs"), Stream: BoolValue(r, "stream"), DetachKeys: r.Form.Get("detachKeys"), Ready: h.answer}
	if BoolValue(r, "stdin") {
		o.Stdin = h.stdin
	}
	if BoolValue(r, "stdout") {
		o.Stdout = h.stdout
	}
	if BoolValue(r, "stderr") {
		o.Stderr = h.stderr
	}
	h.finish(s.Containers.Attach(context.WithoutCancel(r.Context()), id, o))
	return nil
}

// hijacked is a connection taken over for an attach or exec stream. The
// client gets its response only from answer, once the engine has
// registered the stream: the docker CLI starts a container as soon as its
// attach is answered, and output must not be lost in between. Output
// written before the answer waits for it.
type hijacked struct {
	conn           net.Conn
	stdin          io.Reader
	stdout, stderr io.Writer
	answer         func()
	answered       bool
}

func hijack(w http.ResponseWriter, r *http.Request, tty bool) (*hijacked, error) {
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("hijacking the connection of %s: %w", r.URL.Path, err)
	}
	// Streams last as long as the container or exec does.
	conn.SetDeadline(time.Time{})
	gate := &gatedWriter{w: conn, open: make(chan struct{})}
	h := &hijacked{conn: conn, stdin: rw.Reader, stdout: gate, stderr: gate}
	if !tty {
		mux := NewMux(gate)
		h.stdout, h.stderr = mux.Stream(stdcopy.Stdout), mux.Stream(stdcopy.Stderr)
	}
	h.answer = func() {
		h.answered = true
		_, _ = conn.Write([]byte(upgradeResponse(w, r, tty)))
		close(gate.open)
	}
	return h, nil
}

// finish reports how the stream ended: an error before the answer is the
// request's (a status and Docker's error body), after it a line in the
// stream. Callers run the engine with context.WithoutCancel: net/http
// cancels a request's context when the client half-closes its side (the
// end of stdin), which must not end the stream.
func (h *hijacked) finish(err error) {
	switch {
	case err == nil:
	case !h.answered:
		writeRawError(h.conn, err)
	default:
		fmt.Fprintf(h.stderr, "%v\n", err)
	}
}

// gatedWriter holds writes until open is closed: output that arrives
// before the response line is written waits for it.
type gatedWriter struct {
	w    io.Writer
	open chan struct{}
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	<-g.open
	return g.w.Write(p)
}

// writeRawError answers a hijacked request that failed before its stream
// began with the status and body any other request would get.
func writeRawError(conn io.Writer, err error) {
	code := Status(err)
	body, _ := json.Marshal(errorBody{Message: err.Error()})
	fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
}

func (s *Server) containerWait(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := s.Containers.Get(id); err != nil {
		return err
	}
	cond := container.WaitCondition(r.Form.Get("condition"))
	switch cond {
	case "", container.WaitConditionNotRunning, container.WaitConditionNextExit, container.WaitConditionRemoved:
	default:
		return errdefs.Invalidf("invalid condition: %q", cond)
	}
	// Headers go out once the wait is registered: the docker CLI starts
	// the container only after it has them.
	ready := func() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	code, err := s.Containers.Wait(r.Context(), id, cond, ready)
	resp := container.WaitResponse{StatusCode: int64(code)}
	if err != nil {
		resp.Error = &container.WaitExitError{Message: err.Error()}
	}
	return json.NewEncoder(w).Encode(resp)
}

func (s *Server) containerDelete(w http.ResponseWriter, r *http.Request) error {
	if BoolValue(r, "link") {
		return errdefs.Invalidf("links are not supported")
	}
	if err := s.Containers.Remove(r.Context(), r.PathValue("id"), engine.RemoveOptions{Force: BoolValue(r, "force"), Volumes: BoolValue(r, "v")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func setPathStat(w http.ResponseWriter, st *container.PathStat) {
	b, _ := json.Marshal(st)
	w.Header().Set("X-Docker-Container-Path-Stat", base64.StdEncoding.EncodeToString(b))
}

func archivePath(r *http.Request) (string, error) {
	p := r.Form.Get("path")
	if p == "" {
		return "", errdefs.Invalidf("path cannot be empty")
	}
	return p, nil
}

func (s *Server) containerArchiveHead(w http.ResponseWriter, r *http.Request) error {
	p, err := archivePath(r)
	if err != nil {
		return err
	}
	st, err := s.Containers.StatPath(r.Context(), r.PathValue("id"), p)
	if err != nil {
		return err
	}
	setPathStat(w, st)
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) containerArchiveGet(w http.ResponseWriter, r *http.Request) error {
	p, err := archivePath(r)
	if err != nil {
		return err
	}
	started := false
	err = s.Containers.ArchivePath(r.Context(), r.PathValue("id"), p, func(st *container.PathStat) {
		setPathStat(w, st)
		w.Header().Set("Content-Type", "application/x-tar")
		w.WriteHeader(http.StatusOK)
		started = true
	}, w)
	if err != nil && started {
		return nil // the tar is cut short; the client sees a truncated archive
	}
	return err
}

func (s *Server) containerArchivePut(w http.ResponseWriter, r *http.Request) error {
	p, err := archivePath(r)
	if err != nil {
		return err
	}
	if err := s.Containers.ExtractToPath(r.Context(), r.PathValue("id"), p, r.Body); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) execCreate(w http.ResponseWriter, r *http.Request) error {
	var req container.ExecCreateRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	id, err := s.Containers.ExecCreate(r.Context(), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, container.ExecCreateResponse{ID: id})
	return nil
}

func (s *Server) execStart(w http.ResponseWriter, r *http.Request) error {
	var req container.ExecStartRequest
	if r.ContentLength != 0 {
		if err := DecodeJSON(r, &req); err != nil {
			return err
		}
	}
	id := r.PathValue("id")
	xi, err := s.Containers.ExecInspect(id)
	if err != nil {
		return err
	}
	if req.Detach {
		if err := s.Containers.ExecStart(r.Context(), id, engine.ExecStartOptions{Detach: true}); err != nil {
			return err
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	h, err := hijack(w, r, xi.ProcessConfig != nil && xi.ProcessConfig.Tty)
	if err != nil {
		return err
	}
	defer h.conn.Close()
	o := engine.ExecStartOptions{Stdin: h.stdin, Stdout: h.stdout, Stderr: h.stderr, Ready: h.answer}
	h.finish(s.Containers.ExecStart(context.WithoutCancel(r.Context()), id, o))
	return nil
}

func (s *Server) execResize(w http.ResponseWriter, r *http.Request) error {
	h, wd, err := sizeParams(r)
	if err != nil {
		return err
	}
	if err := s.Containers.ExecResize(r.Context(), r.PathValue("id"), h, wd); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) execInspect(w http.ResponseWriter, r *http.Request) error {
	xi, err := s.Containers.ExecInspect(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, xi)
	return nil
}
