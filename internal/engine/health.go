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
//   - an action when the container turns unhealthy (Docker cannot restart
//     an unhealthy container, moby#28400): label
//     berth.health.on-failure=none|restart|stop|kill (default none).
//
// States are Docker's: starting, then healthy after a passing probe, and
// unhealthy after Retries failures in a row (failures in the start
// period do not count). The last five results are kept in the record.

// Labels of berth's probe extensions.
const (
	LabelHealthHTTP      = "berth.health.http"
	LabelHealthTCP       = "berth.health.tcp"
	LabelHealthOnFailure = "berth.health.on-failure"
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

// probe is a container's resolved health check.
type probe struct {
	kind                                        string // "exec", "http", "tcp"
	cmd                                         []string
	port                                        uint16
	path                                        string
	interval, timeout, startPeriod, startInterv time.Duration
	retries                                     int
	onFailure                                   string
}

// healthProbe resolves the container's probe, or nil when it has none.
func healthProbe(cfg *container.Config) (*probe, error) {
	hc := cfg.Healthcheck
	p := &probe{onFailure: "none"}
	if v, ok := cfg.Labels[LabelHealthOnFailure]; ok {
		switch v {
		case "none", "restart", "stop", "kill":
			p.onFailure = v
		default:
			return nil, errdefs.Invalidf("label %s=%q: want none, restart, stop or kill", LabelHealthOnFailure, v)
		}
	}
	switch {
	case cfg.Labels[LabelHealthHTTP] != "":
		v := cfg.Labels[LabelHealthHTTP]
		port, path, _ := strings.Cut(v, "/")
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return nil, errdefs.Invalidf("label %s=%q: want PORT or PORT/PATH", LabelHealthHTTP, v)
		}
		p.kind, p.port, p.path = "http", uint16(n), "/"+path
	case cfg.Labels[LabelHealthTCP] != "":
		v := cfg.Labels[LabelHealthTCP]
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			return nil, errdefs.Invalidf("label %s=%q: want a port", LabelHealthTCP, v)
		}
		p.kind, p.port = "tcp", uint16(n)
	case hc == nil || len(hc.Test) == 0 || hc.Test[0] == "NONE":
		return nil, nil
	case hc.Test[0] == "CMD" && len(hc.Test) > 1:
		p.kind, p.cmd = "exec", hc.Test[1:]
	case hc.Test[0] == "CMD-SHELL" && len(hc.Test) == 2:
		p.kind, p.cmd = "exec", []string{"/bin/sh", "-c", hc.Test[1]}
	default:
		return nil, errdefs.Invalidf("invalid healthcheck test %q: want NONE, CMD args... or CMD-SHELL command", hc.Test)
	}
	p.interval, p.timeout, p.startInterv, p.retries = defaultHealthInterval, defaultHealthTimeout, defaultHealthStartInterval, defaultHealthRetries
	if hc != nil {
		for _, d := range []struct {
			name string
			v    time.Duration
			dst  *time.Duration
		}{{"interval", hc.Interval, &p.interval}, {"timeout", hc.Timeout, &p.timeout}, {"start-period", hc.StartPeriod, &p.startPeriod}, {"start-interval", hc.StartInterval, &p.startInterv}} {
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
			p.retries = hc.Retries
		}
	}
	return p, nil
}

// startHealthLocked begins the health monitor of a container that just
// started (or that a restarted daemon found running).
func (e *Engine) startHealthLocked(c *Container, fresh bool) {
	p, err := healthProbe(c.Config)
	if err != nil || p == nil {
		c.Health = nil
		return
	}
	if fresh || c.Health == nil {
		c.Health = &container.Health{Status: container.Starting}
	}
	if c.healthCancel != nil {
		c.healthCancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.healthCancel = cancel
	started := c.State.StartedAt
	go e.healthLoop(ctx, c, p, started)
}

// stopHealthLocked ends the monitor (the container exited).
func (c *Container) stopHealthLocked() {
	if c.healthCancel != nil {
		c.healthCancel()
		c.healthCancel = nil
	}
}

func (e *Engine) healthLoop(ctx context.Context, c *Container, p *probe, started time.Time) {
	for {
		wait := p.interval
		if time.Since(started) < p.startPeriod {
			wait = min(p.startInterv, p.interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		res := e.runProbe(ctx, c, p)
		if ctx.Err() != nil {
			return
		}
		e.recordHealth(ctx, c, p, res, time.Since(started) < p.startPeriod)
	}
}

// recordHealth applies one result: the streak, the state, the log, the
// event, and the on-failure action.
func (e *Engine) recordHealth(ctx context.Context, c *Container, p *probe, res *container.HealthcheckResult, inStartPeriod bool) {
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
		if h.FailingStreak >= p.retries {
			h.Status = container.Unhealthy
		}
	}
	h.Log = append(h.Log, res)
	if len(h.Log) > healthLogLen {
		h.Log = h.Log[len(h.Log)-healthLogLen:]
	}
	if h.Status != old {
		c.noteLocked(TimelineEntry{Time: res.End, Event: "health", Reason: string(h.Status)})
	}
	if err := c.saveLocked(); err != nil {
		slog.Warn("health result not saved", "id", shortID(c.ID), "err", err)
	}
	c.notifyLocked()
	changed := h.Status != old
	status := h.Status
	id := c.ID
	c.mu.Unlock()
	if changed {
		e.publish(eventContainer, "health_status: "+string(status), c, nil)
		slog.Info("container health changed", "id", shortID(id), "status", status)
	}
	if changed && status == container.Unhealthy && p.onFailure != "none" {
		go e.healthAction(c, p.onFailure)
	}
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
func (e *Engine) runProbe(ctx context.Context, c *Container, p *probe) *container.HealthcheckResult {
	res := &container.HealthcheckResult{Start: time.Now().UTC()}
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var out string
	var code int
	var err error
	switch p.kind {
	case "exec":
		code, out, err = e.execProbe(pctx, c, p.cmd)
	default:
		code, out, err = e.netProbe(pctx, c, p)
	}
	res.End = time.Now().UTC()
	switch {
	case errors.Is(pctx.Err(), context.DeadlineExceeded):
		res.ExitCode, res.Output = -1, fmt.Sprintf("Health check exceeded timeout (%s)", p.timeout)
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
func (e *Engine) netProbe(ctx context.Context, c *Container, p *probe) (int, string, error) {
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
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p.port).String()
	if p.kind == "tcp" {
		conn, err := dial(ctx, "tcp", addr)
		if err != nil {
			return 1, fmt.Sprintf("TCP connect to port %d: %v", p.port, err), nil
		}
		conn.Close()
		return 0, fmt.Sprintf("TCP connect to port %d: ok", p.port), nil
	}
	tr := &http.Transport{DialContext: dial, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.path, nil)
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
