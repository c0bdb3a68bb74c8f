package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/vishvananda/netns"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/probe"
	"github.com/berth-dev/berth/internal/shim"
)

// Health checks, as Docker's HEALTHCHECK (an exec probe: CMD or
// CMD-SHELL, with interval, timeout, start period, start interval and
// retries), and beyond Docker, as Kubernetes has them:
//
//   - HTTP-GET and TCP probes, which berth runs from the host inside the
//     container's network namespace, so the image needs no curl:
//     label berth.health.http=PORT[/PATH] or berth.health.tcp=PORT (they
//     replace the exec probe; the timing flags still apply);
//   - three roles: the liveness probe (Docker's health check, or the label
//     berth.probe.liveness=SPEC, which replaces it), a readiness probe
//     (berth.probe.readiness=SPEC: reported in inspect's State.Readiness
//     and by readiness_status events; later it gates traffic) and a
//     startup probe (berth.probe.startup=SPEC: until it passes, the other
//     two wait; when it fails Retries times in a row the container is
//     killed, and its restart policy decides what comes next). SPEC is
//     internal/probe's compact form, e.g. "http=8080/ready,interval=2s";
//   - an action when the container turns unhealthy (Docker cannot restart
//     an unhealthy container, moby#28400): label
//     berth.health.on-failure=none|restart|stop|kill (default none).
//
// Liveness states are Docker's: starting, then healthy after a passing
// probe, and unhealthy after Retries failures in a row (failures in the
// start period do not count). The last five results of each probe are
// kept in the record.

// Labels of berth's probe extensions.
const (
	LabelHealthHTTP      = "berth.health.http"
	LabelHealthTCP       = "berth.health.tcp"
	LabelHealthOnFailure = "berth.health.on-failure"
	LabelProbeLiveness   = "berth.probe.liveness"
	LabelProbeReadiness  = "berth.probe.readiness"
	LabelProbeStartup    = "berth.probe.startup"
)

// Readiness and startup states.
const (
	ProbeNotReady = "not-ready"
	ProbeReady    = "ready"
	ProbeStarting = "starting"
	ProbeStarted  = "started"
	ProbeFailed   = "failed"
)

// Docker's defaults.
const (
	defaultHealthInterval      = 30 * time.Second
	defaultHealthTimeout       = 30 * time.Second
	defaultHealthStartInterval = 5 * time.Second
	defaultHealthRetries       = 3
	healthLogLen               = 5
	healthOutputMax            = 4096
)

// ProbeState is a readiness or startup probe's state and last results.
type ProbeState struct {
	Status        string
	FailingStreak int
	SuccessStreak int
	Log           []*container.HealthcheckResult
}

func (s *ProbeState) copy() *ProbeState {
	if s == nil {
		return nil
	}
	out := *s
	out.Log = make([]*container.HealthcheckResult, 0, len(s.Log))
	for _, r := range s.Log {
		cp := *r
		out.Log = append(out.Log, &cp)
	}
	return &out
}

// role names what a probe decides.
type role string

const (
	roleLiveness  role = "health"
	roleReadiness role = "readiness"
	roleStartup   role = "startup"
)

// check is a container's resolved probe.
type check struct {
	probe.Spec
	// docker marks a HEALTHCHECK (or the berth.health.* labels): its
	// first probe waits an interval, and its start period applies.
	docker                     bool
	startPeriod, startInterval time.Duration
	onFailure                  string
}

// labelProbe reads a berth.probe.* label, or nil when it is not set.
func labelProbe(cfg *container.Config, label string) (*check, error) {
	v, ok := cfg.Labels[label]
	if !ok {
		return nil, nil
	}
	s, err := probe.Parse(v)
	if err != nil {
		return nil, errdefs.Invalidf("label %s: %v", label, err)
	}
	if label != LabelProbeReadiness && s.Successes != 1 {
		return nil, errdefs.Invalidf("label %s: successes must be 1 for a %s probe (as in Kubernetes)", label, strings.TrimPrefix(label, "berth.probe."))
	}
	return &check{Spec: *s, onFailure: "none"}, nil
}

// probes resolves the container's three probes; each may be nil.
func probes(cfg *container.Config) (live, ready, startup *check, err error) {
	if live, err = healthProbe(cfg); err != nil {
		return nil, nil, nil, err
	}
	if ready, err = labelProbe(cfg, LabelProbeReadiness); err != nil {
		return nil, nil, nil, err
	}
	if startup, err = labelProbe(cfg, LabelProbeStartup); err != nil {
		return nil, nil, nil, err
	}
	return live, ready, startup, nil
}

// healthProbe resolves the container's liveness probe, or nil when it has
// none.
func healthProbe(cfg *container.Config) (*check, error) {
	hc := cfg.Healthcheck
	onFailure := "none"
	if v, ok := cfg.Labels[LabelHealthOnFailure]; ok {
		switch v {
		case "none", "restart", "stop", "kill":
			onFailure = v
		default:
			return nil, errdefs.Invalidf("label %s=%q: want none, restart, stop or kill", LabelHealthOnFailure, v)
		}
	}
	if _, ok := cfg.Labels[LabelProbeLiveness]; ok {
		p, err := labelProbe(cfg, LabelProbeLiveness)
		if err != nil {
			return nil, err
		}
		p.onFailure = onFailure
		return p, nil
	}
	p := &check{docker: true, onFailure: onFailure}
	switch {
	case cfg.Labels[LabelHealthHTTP] != "":
		v := cfg.Labels[LabelHealthHTTP]
		port, path, _ := strings.Cut(v, "/")
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return nil, errdefs.Invalidf("label %s=%q: want PORT or PORT/PATH", LabelHealthHTTP, v)
		}
		p.Kind, p.Port, p.Path = probe.KindHTTP, uint16(n), "/"+path
	case cfg.Labels[LabelHealthTCP] != "":
		v := cfg.Labels[LabelHealthTCP]
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			return nil, errdefs.Invalidf("label %s=%q: want a port", LabelHealthTCP, v)
		}
		p.Kind, p.Port = probe.KindTCP, uint16(n)
	case hc == nil || len(hc.Test) == 0 || hc.Test[0] == "NONE":
		return nil, nil
	case hc.Test[0] == "CMD" && len(hc.Test) > 1:
		p.Kind, p.Cmd = probe.KindExec, hc.Test[1:]
	case hc.Test[0] == "CMD-SHELL" && len(hc.Test) == 2:
		p.Kind, p.Cmd = probe.KindExec, []string{"/bin/sh", "-c", hc.Test[1]}
	default:
		return nil, errdefs.Invalidf("invalid healthcheck test %q: want NONE, CMD args... or CMD-SHELL command", hc.Test)
	}
	p.Interval, p.Timeout, p.startInterval, p.Retries, p.Successes = defaultHealthInterval, defaultHealthTimeout, defaultHealthStartInterval, defaultHealthRetries, 1
	if hc != nil {
		for _, d := range []struct {
			name string
			v    time.Duration
			dst  *time.Duration
		}{{"interval", hc.Interval, &p.Interval}, {"timeout", hc.Timeout, &p.Timeout}, {"start-period", hc.StartPeriod, &p.startPeriod}, {"start-interval", hc.StartInterval, &p.startInterval}} {
			switch {
			case d.v < 0:
				return nil, errdefs.Invalidf("--health-%s cannot be negative", d.name)
			case d.v > 0 && d.v < time.Millisecond:
				return nil, errdefs.Invalidf("--health-%s cannot be less than 1ms", d.name)
			case d.v > 0:
				*d.dst = d.v
			}
		}
		if hc.Retries < 0 {
			return nil, errdefs.Invalidf("--health-retries cannot be negative")
		}
		if hc.Retries > 0 {
			p.Retries = hc.Retries
		}
	}
	return p, nil
}

// startHealthLocked begins the probes of a container that just started
// (fresh), or that a restarted daemon found running (their state goes on).
func (e *Engine) startHealthLocked(c *Container, fresh bool) {
	live, ready, startup, err := probes(c.Config)
	if err != nil {
		slog.Warn("container probes not run", "id", shortID(c.ID), "err", err)
	}
	if c.healthCancel != nil {
		c.healthCancel()
		c.healthCancel = nil
	}
	if live == nil {
		c.Health = nil
	} else if fresh || c.Health == nil {
		c.Health = &container.Health{Status: container.Starting}
	}
	if ready == nil {
		c.Readiness = nil
	} else if fresh || c.Readiness == nil {
		c.Readiness = &ProbeState{Status: ProbeNotReady}
	}
	if startup == nil {
		c.Startup = nil
	} else if fresh || c.Startup == nil {
		c.Startup = &ProbeState{Status: ProbeStarting}
	}
	if live == nil && ready == nil && startup == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.healthCancel = cancel
	started := c.State.StartedAt
	startupDone := c.Startup == nil || c.Startup.Status == ProbeStarted
	go func() {
		if !startupDone && !e.probeLoop(ctx, c, roleStartup, startup, started) {
			return
		}
		if live != nil {
			go e.probeLoop(ctx, c, roleLiveness, live, started)
		}
		if ready != nil {
			e.probeLoop(ctx, c, roleReadiness, ready, started)
		}
	}()
}

// stopHealthLocked ends the probes (the container exited).
func (c *Container) stopHealthLocked() {
	if c.healthCancel != nil {
		c.healthCancel()
		c.healthCancel = nil
	}
}

// probeLoop runs one probe until the context ends; a startup probe's loop
// ends when it passes (true) or fails for good (false).
func (e *Engine) probeLoop(ctx context.Context, c *Container, r role, p *check, started time.Time) bool {
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(max(d, 0))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	// Kubernetes probes first after their delay, Docker after an interval.
	if !p.docker && !sleep(time.Until(started.Add(p.Delay))) {
		return false
	}
	for first := true; ; first = false {
		inStart := time.Since(started) < p.startPeriod
		if p.docker || !first {
			wait := p.Interval
			if inStart {
				wait = min(p.startInterval, p.Interval)
			}
			if !sleep(wait) {
				return false
			}
			inStart = time.Since(started) < p.startPeriod
		}
		res := e.runProbe(ctx, c, p)
		if ctx.Err() != nil {
			return false
		}
		switch r {
		case roleLiveness:
			e.recordHealth(ctx, c, p, res, inStart)
		case roleReadiness:
			e.recordReadiness(ctx, c, p, res)
		case roleStartup:
			if done, passed := e.recordStartup(ctx, c, p, res); done {
				return passed
			}
		}
	}
}

// recordHealth applies one liveness result: the streak, the state, the
// log, the event, and the on-failure action.
func (e *Engine) recordHealth(ctx context.Context, c *Container, p *check, res *container.HealthcheckResult, inStartPeriod bool) {
	c.mu.Lock()
	if ctx.Err() != nil || c.Health == nil || c.State.Status != container.StateRunning || c.State.ManualStop {
		c.mu.Unlock()
		return
	}
	h := c.Health
	old := h.Status
	if res.ExitCode == 0 {
		h.FailingStreak = 0
		h.Status = container.Healthy
	} else if !inStartPeriod || h.Status != container.Starting {
		h.FailingStreak++
		if h.FailingStreak >= p.Retries {
			h.Status = container.Unhealthy
		}
	}
	h.Log = appendResult(h.Log, res)
	changed := h.Status != old
	status := h.Status
	e.probeChangedLocked(c, roleLiveness, changed, string(status), res.End)
	c.mu.Unlock()
	if changed && status == container.Unhealthy && p.onFailure != "none" {
		go e.healthAction(c, p.onFailure)
	}
}

// recordReadiness applies one readiness result.
func (e *Engine) recordReadiness(ctx context.Context, c *Container, p *check, res *container.HealthcheckResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.Readiness
	if ctx.Err() != nil || s == nil || c.State.Status != container.StateRunning {
		return // ended, or paused: a frozen container's probe says nothing
	}
	old := s.Status
	if res.ExitCode == 0 {
		s.FailingStreak = 0
		s.SuccessStreak++
		if s.SuccessStreak >= p.Successes {
			s.Status = ProbeReady
		}
	} else {
		s.SuccessStreak = 0
		s.FailingStreak++
		if s.FailingStreak >= p.Retries {
			s.Status = ProbeNotReady
		}
	}
	s.Log = appendResult(s.Log, res)
	e.probeChangedLocked(c, roleReadiness, s.Status != old, s.Status, res.End)
}

// recordStartup applies one startup result. It reports whether the probe
// is done, and if so whether it passed. A startup probe that fails for
// good kills the container, which is no manual stop: its restart policy
// decides what follows.
func (e *Engine) recordStartup(ctx context.Context, c *Container, p *check, res *container.HealthcheckResult) (done, passed bool) {
	c.mu.Lock()
	s := c.Startup
	if ctx.Err() != nil || s == nil {
		c.mu.Unlock()
		return true, false
	}
	if c.State.Status != container.StateRunning || c.State.ManualStop {
		// Paused (its probes time out meaningless), or being stopped
		// by hand: no verdict; the loop goes on until its context ends.
		c.mu.Unlock()
		return false, false
	}
	if res.ExitCode == 0 {
		s.FailingStreak = 0
		s.SuccessStreak++
		s.Status = ProbeStarted
	} else {
		s.SuccessStreak = 0
		s.FailingStreak++
		if s.FailingStreak >= p.Retries {
			s.Status = ProbeFailed
		}
	}
	s.Log = appendResult(s.Log, res)
	done = s.Status != ProbeStarting
	passed = s.Status == ProbeStarted
	e.probeChangedLocked(c, roleStartup, done, s.Status, res.End)
	c.mu.Unlock()
	if done && !passed {
		slog.Info("startup probe failed; killing the container", "id", shortID(c.ID), "failures", p.Retries)
		if err := e.kill(context.Background(), c, c.ID, syscall.SIGKILL, false); err != nil && !errdefs.IsNotModified(err) {
			slog.Warn("killing a container whose startup probe failed", "id", shortID(c.ID), "err", err)
		}
	}
	return done, passed
}

// notReadyLocked ends a ready container's readiness: it exited.
func (e *Engine) notReadyLocked(c *Container) {
	if s := c.Readiness; s != nil && s.Status == ProbeReady {
		s.Status, s.SuccessStreak = ProbeNotReady, 0
		e.probeChangedLocked(c, roleReadiness, true, ProbeNotReady, time.Now().UTC())
	}
}

// probeChangedLocked saves a probe result, and on a change of state notes
// it in the timeline and publishes "<role>_status: <status>".
func (e *Engine) probeChangedLocked(c *Container, r role, changed bool, status string, at time.Time) {
	if changed {
		c.noteLocked(TimelineEntry{Time: at, Event: string(r), Reason: status})
	}
	if err := c.saveLocked(); err != nil {
		slog.Warn("probe result not saved", "id", shortID(c.ID), "err", err)
	}
	c.notifyLocked()
	if changed {
		e.publishLocked(eventContainer, string(r)+"_status: "+status, c, nil)
		slog.Info("container probe changed", "id", shortID(c.ID), "probe", r, "status", status)
	}
}

func appendResult(log []*container.HealthcheckResult, res *container.HealthcheckResult) []*container.HealthcheckResult {
	log = append(log, res)
	if len(log) > healthLogLen {
		log = log[len(log)-healthLogLen:]
	}
	return log
}

// healthAction restarts, stops or kills an unhealthy container. A restart
// counts as one of the policy's restarts.
func (e *Engine) healthAction(c *Container, action string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	switch action {
	case "restart":
		c.mu.Lock()
		c.noteLocked(TimelineEntry{Event: "restarting", Reason: "unhealthy"})
		c.mu.Unlock()
		err = e.restart(ctx, c.ID, StopOptions{}, true)
	case "stop":
		err = e.Stop(ctx, c.ID, StopOptions{})
	case "kill":
		err = e.Kill(ctx, c.ID, "KILL")
	}
	if err != nil && !errdefs.IsNotModified(err) {
		slog.Warn("acting on an unhealthy container failed", "id", shortID(c.ID), "action", action, "err", err)
	}
}

// runProbe runs one probe within its timeout.
func (e *Engine) runProbe(ctx context.Context, c *Container, p *check) *container.HealthcheckResult {
	res := &container.HealthcheckResult{Start: time.Now().UTC()}
	pctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	var out string
	var code int
	var err error
	switch p.Kind {
	case probe.KindExec:
		code, out, err = e.execProbe(pctx, c, p.Cmd)
	default:
		code, out, err = e.netProbe(pctx, c, p)
	}
	res.End = time.Now().UTC()
	switch {
	case errors.Is(pctx.Err(), context.DeadlineExceeded):
		res.ExitCode, res.Output = -1, fmt.Sprintf("Health check exceeded timeout (%s)", p.Timeout)
	case err != nil:
		res.ExitCode, res.Output = -1, err.Error()
	default:
		res.ExitCode, res.Output = code, out
	}
	if len(res.Output) > healthOutputMax {
		res.Output = res.Output[:healthOutputMax]
	}
	return res
}

// execProbe runs the command in the container, as docker exec would, and
// kills it at the timeout.
func (e *Engine) execProbe(ctx context.Context, c *Container, cmd []string) (int, string, error) {
	c.mu.Lock()
	client := c.shim
	running := c.State.Status == container.StateRunning
	c.mu.Unlock()
	if !running || client == nil {
		return 0, "", errdefs.Conflictf("container %s is not running", shortID(c.ID))
	}
	proc, err := e.execProcess(c, container.ExecCreateRequest{Cmd: cmd})
	if err != nil {
		return 0, "", err
	}
	var out lockedBuffer
	st, err := client.Exec(context.WithoutCancel(ctx), shim.ExecOptions{ID: "health-" + newID()[:12], Process: proc, Stdout: &out, Stderr: &out})
	if err != nil {
		return 0, "", err
	}
	defer st.Close()
	select {
	case <-st.Done():
	case <-ctx.Done():
		if pid := st.Pid(); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return 0, "", ctx.Err()
	}
	es, err := st.Wait()
	if err != nil || es == nil {
		return 0, out.String(), fmt.Errorf("health check exec: %v", err)
	}
	return es.ExitCode, out.String(), nil
}

// netProbe dials the probe's port from inside the container's network
// namespace: an HTTP GET (2xx and 3xx pass) or a TCP connect.
func (e *Engine) netProbe(ctx context.Context, c *Container, p *check) (int, string, error) {
	c.mu.Lock()
	pid := c.State.Pid
	host := c.HostConfig.NetworkMode.IsHost()
	c.mu.Unlock()
	if pid <= 0 {
		return 0, "", errdefs.Conflictf("container %s is not running", shortID(c.ID))
	}
	nsPath := fmt.Sprintf("/proc/%d/ns/net", pid)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
		return dialInNetns(ctx, nsPath, network, addr)
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p.Port).String()
	if p.Kind == probe.KindTCP {
		conn, err := dial(ctx, "tcp", addr)
		if err != nil {
			return 1, fmt.Sprintf("TCP connect to port %d: %v", p.Port, err), nil
		}
		conn.Close()
		return 0, fmt.Sprintf("TCP connect to port %d: ok", p.Port), nil
	}
	tr := &http.Transport{DialContext: dial, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.Path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("User-Agent", "berth-health/1")
	res, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		return 1, fmt.Sprintf("HTTP GET %s: %v", req.URL.Path, err), nil
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, healthOutputMax))
	out := fmt.Sprintf("HTTP GET %s: %s\n%s", req.URL.Path, res.Status, body)
	if res.StatusCode >= 200 && res.StatusCode < 400 {
		return 0, out, nil
	}
	return 1, out, nil
}

// dialInNetns opens a connection from inside the network namespace at
// nsPath: the socket is made on a thread that joined the namespace, and
// belongs to it for its life. The thread goes back to the host's namespace
// afterwards, or, if it cannot, dies with its goroutine (never unlocked).
func dialInNetns(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		goruntime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			goruntime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("reading own network namespace: %w", err)}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(nsPath)
		if err != nil {
			goruntime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("opening the container's network namespace: %w", err)}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			goruntime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("entering the container's network namespace: %w", err)}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		if netns.Set(orig) == nil {
			goruntime.UnlockOSThread()
		}
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.c, r.err
}

// lockedBuffer collects a probe's stdout and stderr, written from two
// goroutines, up to healthOutputMax bytes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := healthOutputMax - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// healthCopy is the inspect view of a container's health.
func healthCopy(h *container.Health) *container.Health {
	if h == nil {
		return nil
	}
	out := &container.Health{Status: h.Status, FailingStreak: h.FailingStreak, Log: make([]*container.HealthcheckResult, 0, len(h.Log))}
	for _, r := range h.Log {
		cp := *r
		out.Log = append(out.Log, &cp)
	}
	return out
}

// healthSuffix is Docker's ps status suffix: " (healthy)",
// " (health: starting)", " (unhealthy)".
func healthSuffix(h *container.Health) string {
	if h == nil {
		return ""
	}
	switch h.Status {
	case container.Starting:
		return " (health: starting)"
	case container.Healthy, container.Unhealthy:
		return " (" + string(h.Status) + ")"
	}
	return ""
}
