package e2e

// Health checks: Docker's exec probe, berth's HTTP and TCP probes run from
// the host inside the container's network namespace, timeouts, and the
// on-failure action.

import (
	"strings"
	"testing"
	"time"
)

func TestHealthExecProbe(t *testing.T) {
	d := ctrDaemon(t, "berth")
	mustB(t, d, "", "run", "-d", "--name", "h1", "--health-cmd", "test -f /tmp/ok", "--health-interval", "200ms", "--health-retries", "2",
		"busybox", "sh", "-c", "touch /tmp/ok; exec sleep 1000")
	health := func() string { return inspectField(t, d, "h1", "{{.State.Health.Status}}") }
	waitFor(t, "h1 to turn healthy", 10*time.Second, func() bool { return health() == "healthy" })
	if ps := mustB(t, d, "", "ps", "--filter", "health=healthy", "--format", "{{.Names}} {{.Status}}"); !strings.Contains(ps, "h1 Up") || !strings.Contains(ps, "(healthy)") {
		t.Fatalf("ps of a healthy container: %q", ps)
	}
	mustB(t, d, "", "exec", "h1", "rm", "/tmp/ok")
	waitFor(t, "h1 to turn unhealthy", 10*time.Second, func() bool { return health() == "unhealthy" })
	if n := inspectField(t, d, "h1", "{{len .State.Health.Log}}"); n == "0" || n > "5" {
		t.Fatalf("health log holds %s results, want 1 to 5", n)
	}
	if code := inspectField(t, d, "h1", "{{(index .State.Health.Log 0).ExitCode}}"); code != "0" && code != "1" {
		t.Fatalf("exit code of a probe: %s", code)
	}
	// The docker CLI reads the same state.
	if out := mustD(t, d, "inspect", "-f", "{{.State.Health.Status}}", "h1"); strings.TrimSpace(out) != "unhealthy" {
		t.Fatalf("docker inspect health: %q", out)
	}

	// A probe that hangs is cut at its timeout, and counts as a failure.
	mustB(t, d, "", "run", "-d", "--name", "hang", "--health-cmd", "sleep 30", "--health-timeout", "300ms", "--health-interval", "200ms", "--health-retries", "1",
		"busybox", "sleep", "1000")
	waitFor(t, "a hanging probe to make the container unhealthy", 10*time.Second, func() bool {
		return inspectField(t, d, "hang", "{{.State.Health.Status}}") == "unhealthy"
	})
	if out := inspectField(t, d, "hang", "{{(index .State.Health.Log 0).Output}}"); !strings.Contains(out, "timeout") {
		t.Fatalf("output of a timed-out probe: %q", out)
	}
	// The probe process is gone (killed at the timeout).
	if top := mustB(t, d, "", "top", "hang"); strings.Count(top, "sleep 30") > 1 {
		t.Fatalf("timed-out probes are still running:\n%s", top)
	}

	// Bad input.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "-d", "--health-retries", "-1", "--health-cmd", "true", "busybox", "true"}, "health-retries"},
		{[]string{"run", "-d", "--no-healthcheck", "--health-cmd", "true", "busybox", "true"}, "no-healthcheck"},
		{[]string{"run", "-d", "--label", "berth.health.http=web", "busybox", "true"}, "berth.health.http"},
		{[]string{"run", "-d", "--label", "berth.health.on-failure=explode", "--health-cmd", "true", "busybox", "true"}, "berth.health.on-failure"},
	} {
		_, errOut, code := d.Berth("", tc.args...)
		first, _, _ := strings.Cut(errOut, "\n")
		if code == 0 || !strings.Contains(first, tc.want) {
			t.Errorf("berth %s: exit %d, stderr %q; want an error naming %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}

func TestHealthNetworkProbesAndRestart(t *testing.T) {
	d := ctrDaemon(t, "berth")
	// An HTTP probe on a container with no network of its own but
	// loopback: berth dials from inside its namespace. When the server
	// dies, the container turns unhealthy and is restarted (liveness).
	serve := "mkdir -p /www && echo ok > /www/index.html && httpd -p 80 -h /www; exec sleep 1000"
	mustB(t, d, "", "run", "-d", "--name", "live", "--network", "none",
		"--label", "berth.health.http=80/index.html", "--health-on-failure", "restart", "--stop-timeout", "1",
		"--health-interval", "200ms", "--health-retries", "2", "busybox", "sh", "-c", serve)
	waitFor(t, "the HTTP probe to pass", 10*time.Second, func() bool {
		return inspectField(t, d, "live", "{{.State.Health.Status}}") == "healthy"
	})
	if out := inspectField(t, d, "live", "{{(index .State.Health.Log 0).Output}}"); !strings.Contains(out, "200 OK") {
		t.Fatalf("HTTP probe output: %q", out)
	}
	mustB(t, d, "", "exec", "live", "killall", "httpd")
	waitFor(t, "the unhealthy container to be restarted", 15*time.Second, func() bool {
		return restartCount(t, d, "live") >= 1 && inspectField(t, d, "live", "{{.State.Health.Status}}") == "healthy"
	})

	// A TCP probe on the default bridge, against a port nothing listens on.
	mustB(t, d, "", "run", "-d", "--name", "deaf", "--label", "berth.health.tcp=81",
		"--health-interval", "200ms", "--health-retries", "2", "busybox", "sh", "-c", serve)
	waitFor(t, "the TCP probe to fail", 10*time.Second, func() bool {
		return inspectField(t, d, "deaf", "{{.State.Health.Status}}") == "unhealthy"
	})
	if out := inspectField(t, d, "deaf", "{{(index .State.Health.Log 0).Output}}"); !strings.Contains(out, "port 81") {
		t.Fatalf("TCP probe output: %q", out)
	}
	// A container that exits before its first probe: no probe result,
	// and the state is the exit.
	mustB(t, d, "", "run", "-d", "--name", "brief", "--health-cmd", "true", "--health-interval", "1s", "busybox", "true")
	waitFor(t, "brief to exit", 10*time.Second, func() bool {
		return inspectField(t, d, "brief", "{{.State.Status}}") == "exited"
	})
	if n := inspectField(t, d, "brief", "{{len .State.Health.Log}}"); n != "0" {
		t.Fatalf("a container that exited at once has %s probe results", n)
	}
}
