package e2e

// Kubernetes-style probes beside Docker's health check: readiness (its
// own state and events), startup (gates the other probes; failing it
// kills the container, and the restart policy decides), and the live OOM
// event of a container that survives the kill.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

func TestProbesReadinessAndStartup(t *testing.T) {
	d := ctrDaemon(t, "berth")
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)

	// Readiness: not ready until the probe passes; back to not ready
	// after a failure (retries=1). Liveness is untouched by it.
	mustB(t, d, "", "run", "-d", "--name", "r1", "--readiness-probe", "interval=150ms,retries=1,cmd=test -f /tmp/ready", "busybox", "sleep", "1000")
	ready := func() string { return inspectField(t, d, "r1", "{{.State.Readiness.Status}}") }
	if st := ready(); st != "not-ready" {
		t.Fatalf("readiness at start: %q, want not-ready", st)
	}
	waitFor(t, "a failing readiness result", 10*time.Second, func() bool {
		return inspectField(t, d, "r1", "{{len .State.Readiness.Log}}") != "0"
	})
	mustB(t, d, "", "exec", "r1", "touch", "/tmp/ready")
	waitFor(t, "r1 to turn ready", 10*time.Second, func() bool { return ready() == "ready" })
	mustB(t, d, "", "exec", "r1", "rm", "/tmp/ready")
	waitFor(t, "r1 to turn not ready", 10*time.Second, func() bool { return ready() == "not-ready" })
	if h := inspectField(t, d, "r1", "{{.State.Health}}"); h != "<nil>" && h != "<no value>" {
		t.Errorf("a readiness probe made a health state: %s", h)
	}
	if st := inspectField(t, d, "r1", "{{.State.Status}}"); st != "running" {
		t.Errorf("a failing readiness probe changed the container: %s", st)
	}
	// Ready again, then stopped: an exited container is not ready.
	mustB(t, d, "", "exec", "r1", "touch", "/tmp/ready")
	waitFor(t, "r1 to turn ready again", 10*time.Second, func() bool { return ready() == "ready" })
	mustB(t, d, "", "stop", "-t", "0", "r1")
	if st := ready(); st != "not-ready" {
		t.Errorf("readiness of a stopped container: %q, want not-ready", st)
	}

	// Startup gates liveness: while it has not passed, the liveness probe
	// (which would fail at once) does not run; then both pass.
	mustB(t, d, "", "run", "-d", "--name", "s1",
		"--startup-probe", "interval=100ms,retries=100,cmd=test -f /tmp/up",
		"--liveness-probe", "interval=100ms,retries=1,cmd=test -f /tmp/up",
		"--health-on-failure", "kill", "busybox", "sleep", "1000")
	waitFor(t, "startup probe results", 10*time.Second, func() bool {
		n, _ := strconv.Atoi(inspectField(t, d, "s1", "{{.State.Startup.FailingStreak}}"))
		return n >= 5
	})
	if got := inspectField(t, d, "s1", "{{.State.Startup.Status}} {{.State.Health.Status}} {{len .State.Health.Log}} {{.State.Status}}"); got != "starting starting 0 running" {
		t.Fatalf("before startup passed: startup, health, health results, status = %q, want starting starting 0 running", got)
	}
	mustB(t, d, "", "exec", "s1", "touch", "/tmp/up")
	waitFor(t, "s1 to start and turn healthy", 10*time.Second, func() bool {
		return inspectField(t, d, "s1", "{{.State.Startup.Status}} {{.State.Health.Status}}") == "started healthy"
	})

	// A startup probe that never passes kills the container; on-failure:1
	// starts it once more, and after the second failure it stays exited.
	mustB(t, d, "", "run", "-d", "--name", "s2", "--restart", "on-failure:1", "--network", "none",
		"--startup-probe", "interval=100ms,retries=3,tcp=9", "busybox", "sleep", "1000")
	waitFor(t, "s2 to be killed twice and stay exited", 20*time.Second, func() bool {
		return inspectField(t, d, "s2", "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}") == "exited 1 137"
	})
	if st := inspectField(t, d, "s2", "{{.State.Startup.Status}} {{.State.Startup.FailingStreak}}"); st != "failed 3" {
		t.Errorf("startup state after failing: %q, want failed 3", st)
	}
	if out := inspectField(t, d, "s2", "{{(index .State.Startup.Log 0).Output}}"); !strings.Contains(out, "TCP connect to port 9") {
		t.Errorf("startup probe output: %q", out)
	}

	until := strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)
	time.Sleep(1100 * time.Millisecond)
	out := mustB(t, d, "", "events", "--since", since, "--until", until, "--filter", "type=container", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
	for _, want := range []string{
		"readiness_status: ready r1", "readiness_status: not-ready r1",
		"startup_status: started s1", "health_status: healthy s1",
		"startup_status: failed s2", "die s2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("events lack %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "startup_status: failed s2"); n != 2 {
		t.Errorf("%d startup failures of s2 in the events, want 2", n)
	}
	if i, j := strings.Index(out, "startup_status: started s1"), strings.Index(out, "health_status: healthy s1"); i > j {
		t.Errorf("s1 turned healthy before it started:\n%s", out)
	}
	tl := containerTimeline(t, d, "r1")
	var seen []string
	for _, ev := range tl {
		if ev.Event == "readiness" {
			seen = append(seen, ev.Reason)
		}
	}
	if strings.Join(seen, ",") != "ready,not-ready,ready,not-ready" {
		t.Errorf("r1's timeline readiness entries: %v, want ready,not-ready,ready,not-ready", seen)
	}

	// Bad input: a clear error naming the flag or label, nothing made.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "-d", "--readiness-probe", "http=0", "busybox", "true"}, "--readiness-probe"},
		{[]string{"run", "-d", "--startup-probe", "interval=2,tcp=1", "busybox", "true"}, "want a duration"},
		{[]string{"run", "-d", "--liveness-probe", "retries=-1,tcp=1", "busybox", "true"}, "--liveness-probe"},
		{[]string{"run", "-d", "--label", "berth.probe.startup=successes=2,tcp=1", "busybox", "true"}, "berth.probe.startup"},
		{[]string{"run", "-d", "--label", "berth.probe.readiness=port=80", "busybox", "true"}, "berth.probe.readiness"},
		{[]string{"run", "-d", "--restart-factor", "0.5", "busybox", "true"}, "--restart-factor"},
		{[]string{"run", "-d", "--restart-delay", "-1s", "busybox", "true"}, "--restart-delay"},
	} {
		_, errOut, code := d.Berth("", tc.args...)
		first, _, _ := strings.Cut(errOut, "\n")
		if code == 0 || !strings.Contains(first, tc.want) {
			t.Errorf("berth %s: exit %d, stderr %q; want an error naming %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
	if n := strings.Count(mustB(t, d, "", "ps", "-a", "--format", "{{.Names}}"), "\n"); n != 3 {
		t.Errorf("bad input left containers: %d, want 3", n)
	}
}

func TestLiveOOMEvent(t *testing.T) {
	d := ctrDaemon(t, "berth")
	// The container's shell survives its child's OOM kill: the event
	// comes while it runs, not at its exit. A second hog runs while the
	// daemon is down (it waits for a file made then); the restarted
	// daemon reports it at once.
	mustB(t, d, "", "run", "-d", "--name", "oomw", "-m", "32m", "busybox", "sh", "-c",
		"tail /dev/zero; until [ -e /tmp/go ]; do sleep 0.1; done; tail /dev/zero; touch /tmp/done; exec sleep 1000")
	waitFor(t, "the first OOM kill", 10*time.Second, func() bool {
		return inspectField(t, d, "oomw", "{{.State.Status}} {{.State.OOMKilled}}") == "running true"
	})
	rootfs := inspectField(t, d, "oomw", "{{.GraphDriver.Data.MergedDir}}")
	d.Kill9()
	if err := os.WriteFile(filepath.Join(rootfs, "tmp", "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, err := os.Stat(filepath.Join(rootfs, "tmp", "done")); err != nil; _, err = os.Stat(filepath.Join(rootfs, "tmp", "done")) {
		if time.Now().After(deadline) {
			t.Fatal("the second hog did not end while the daemon was down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.Restart()
	oomEvents := func() string {
		until := strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)
		time.Sleep(1100 * time.Millisecond) // until must be past for the stream to end
		return mustB(t, d, "", "events", "--since", "0", "--until", until, "--filter", "event=oom", "--format", "{{.Actor.Attributes.name}}")
	}
	oomCount := func() int {
		n := 0
		for _, ev := range containerTimeline(t, d, "oomw") {
			if ev.Event == "oom" {
				n++
			}
		}
		return n
	}
	waitFor(t, "the OOM kill while the daemon was down", 10*time.Second, func() bool { return oomCount() == 2 })
	out := oomEvents()
	if n := strings.Count(out, "oomw"); n != 2 {
		t.Errorf("%d oom events of oomw, want 2:\n%s", n, out)
	}
	if st := inspectField(t, d, "oomw", "{{.State.Status}}"); st != "running" {
		t.Errorf("the container did not survive its child's OOM kill: %s", st)
	}
	// Stopping it is no third OOM event.
	mustB(t, d, "", "stop", "-t", "0", "oomw")
	out = oomEvents()
	if n := strings.Count(out, "oomw"); n != 2 {
		t.Errorf("%d oom events after stop, want 2:\n%s", n, out)
	}
}

type timelineEntry struct {
	Event    string `json:"event"`
	ExitCode *int   `json:"exitCode"`
	Reason   string `json:"reason"`
	Delay    int64  `json:"delay"`
}

// containerTimeline reads berth's timeline of a container.
func containerTimeline(t *testing.T, d *testutil.Daemon, name string) []timelineEntry {
	t.Helper()
	res, err := d.HTTPClient().Get("http://berth/berth/v1/containers/" + name + "/timeline")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tl []timelineEntry
	if err := json.NewDecoder(res.Body).Decode(&tl); err != nil {
		t.Fatalf("timeline of %s: %v", name, err)
	}
	return tl
}
