package e2e

// Restart policies: back-off growth, on-failure's limit, manual stops, and
// policies that survive kill -9 of the daemon.

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// waitFor polls cond every 50 ms until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func restartCount(t *testing.T, d *testutil.Daemon, name string) int {
	t.Helper()
	n, err := strconv.Atoi(inspectField(t, d, name, "{{.RestartCount}}"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRestartPolicyBackoff(t *testing.T) {
	d := ctrDaemon(t, "berth")
	// A crash loop: the delays between starts grow (200 ms doubling).
	mustB(t, d, "", "run", "-d", "--name", "crash", "--restart", "always",
		"--restart-delay", "200ms", "--restart-max-delay", "5s",
		"busybox", "sh", "-c", "exit 3")
	starts := map[int]time.Time{} // restart count -> when first seen running
	deadline := time.Now().Add(8 * time.Second)
	for len(starts) < 5 && time.Now().Before(deadline) {
		out := inspectField(t, d, "crash", "{{.RestartCount}} {{.State.StartedAt}}")
		f := strings.Fields(out)
		n, _ := strconv.Atoi(f[0])
		at, err := time.Parse(time.RFC3339Nano, f[1])
		if _, seen := starts[n]; !seen && err == nil && at.Year() > 2000 {
			starts[n] = at
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(starts) < 5 {
		t.Fatalf("only %d starts seen in 8 s: %v", len(starts), starts)
	}
	var gaps []time.Duration
	for i := 1; i < 5; i++ {
		a, okA := starts[i-1]
		b, okB := starts[i]
		if okA && okB {
			gaps = append(gaps, b.Sub(a))
		}
	}
	if len(gaps) < 3 {
		t.Fatalf("too few consecutive starts to compare: %v", starts)
	}
	t.Logf("time between starts: %v", gaps)
	for i := 1; i < len(gaps); i++ {
		if gaps[i] <= gaps[i-1] {
			t.Errorf("restart delays do not grow: %v", gaps)
		}
	}
	if gaps[len(gaps)-1] < 2*gaps[0] {
		t.Errorf("restart delays grow too little: %v", gaps)
	}
	// The timeline records each exit with its code and each restart with
	// its growing delay.
	tl := containerTimeline(t, d, "crash")
	var delays []int64
	for _, ev := range tl {
		switch ev.Event {
		case "exited":
			if ev.ExitCode == nil || *ev.ExitCode != 3 || ev.Reason != "exit" {
				t.Errorf("timeline exit: %+v", ev)
			}
		case "restarting":
			delays = append(delays, ev.Delay)
		}
	}
	if len(tl) == 0 || tl[0].Event != "created" || len(delays) < 3 || delays[1] <= delays[0] || delays[2] <= delays[1] {
		t.Errorf("timeline: %+v", tl)
	}
	// ps and inspect show the state between attempts.
	// the time of the next attempt too.
	waitFor(t, "a restarting state with its next start", 5*time.Second, func() bool {
		f := strings.Fields(inspectField(t, d, "crash", "{{.State.Status}} {{.State.NextRestartAt}}"))
		if len(f) != 2 || f[0] != "restarting" {
			return false
		}
		at, err := time.Parse(time.RFC3339Nano, f[1])
		return err == nil && at.Year() > 2000
	})
	if l := inspectField(t, d, "crash", `{{index .Config.Labels "berth.restart.delay"}} {{index .Config.Labels "berth.restart.max-delay"}}`); l != "200ms 5s" {
		t.Errorf("back-off flags as labels: %q", l)
	}
	// Each back-off is an event with its delay and next start.
	evs := mustB(t, d, "", "events", "--since", "0", "--until", strconv.FormatInt(time.Now().Unix(), 10), "--filter", "event=restarting",
		"--format", "{{.Actor.Attributes.restartDelay}} {{.Actor.Attributes.nextRestartAt}}")
	if lines := strings.Split(strings.TrimSpace(evs), "\n"); len(lines) < 2 || !strings.HasPrefix(lines[0], "200ms 20") || !strings.HasPrefix(lines[1], "400ms 20") {
		t.Errorf("restarting events: %q", evs)
	}
	// A stop ends the loop.
	mustB(t, d, "", "stop", "crash")
	n := restartCount(t, d, "crash")
	time.Sleep(1500 * time.Millisecond)
	if st := inspectField(t, d, "crash", "{{.State.Status}}"); st != "exited" || restartCount(t, d, "crash") != n {
		t.Fatalf("after stop: status %s, restarts %d -> %d", st, n, restartCount(t, d, "crash"))
	}
}

func TestRestartPolicyOnFailure(t *testing.T) {
	d := ctrDaemon(t, "berth")
	mustB(t, d, "", "run", "-d", "--name", "fail3", "--restart", "on-failure:3", "--label", "berth.restart.delay=50ms",
		"busybox", "sh", "-c", "exit 1")
	mustB(t, d, "", "run", "-d", "--name", "ok", "--restart", "on-failure", "busybox", "true")
	waitFor(t, "on-failure:3 to give up", 10*time.Second, func() bool {
		return inspectField(t, d, "fail3", "{{.State.Status}}") == "exited" && restartCount(t, d, "fail3") == 3
	})
	time.Sleep(500 * time.Millisecond)
	if n := restartCount(t, d, "fail3"); n != 3 {
		t.Fatalf("on-failure:3 restarted %d times", n)
	}
	if code := inspectField(t, d, "fail3", "{{.State.ExitCode}}"); code != "1" {
		t.Fatalf("exit code after the last try: %s", code)
	}
	waitFor(t, "the successful container to exit", 5*time.Second, func() bool {
		return inspectField(t, d, "ok", "{{.State.Status}}") == "exited"
	})
	if n := restartCount(t, d, "ok"); n != 0 {
		t.Fatalf("on-failure restarted a container that exited 0: %d", n)
	}
	// Bad input: a clear error, nothing made.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "-d", "--restart", "on-failure:-1", "busybox", "true"}, "negative"},
		{[]string{"run", "-d", "--restart", "sometimes", "busybox", "true"}, "sometimes"},
		{[]string{"run", "-d", "--restart", "always", "--label", "berth.restart.delay=soon", "busybox", "true"}, "berth.restart.delay"},
		{[]string{"run", "-d", "--restart", "always", "--label", "berth.restart.factor=0", "busybox", "true"}, "berth.restart.factor"},
	} {
		_, errOut, code := d.Berth("", tc.args...)
		first, _, _ := strings.Cut(errOut, "\n")
		if code == 0 || !strings.Contains(first, tc.want) {
			t.Errorf("berth %s: exit %d, stderr %q; want an error naming %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
	if out := mustB(t, d, "", "ps", "-aq"); len(strings.Fields(out)) != 2 {
		t.Fatalf("bad input left containers: %q", out)
	}
}

func TestRestartPolicyAcrossDaemonRestarts(t *testing.T) {
	d := ctrDaemon(t, "berth")
	// "always": its process dies while no daemon runs; the next daemon
	// finds the exit and restarts it.
	mustB(t, d, "", "run", "-d", "--name", "svc", "--restart", "always", "busybox", "sleep", "1000")
	pid := inspectField(t, d, "svc", "{{.State.Pid}}")
	d.Kill9()
	if out, err := exec.Command("kill", "-9", pid).CombinedOutput(); err != nil {
		t.Fatalf("kill %s: %v %s", pid, err, out)
	}
	time.Sleep(300 * time.Millisecond)
	d.Restart()
	waitFor(t, "svc to be restarted by its policy", 10*time.Second, func() bool {
		return inspectField(t, d, "svc", "{{.State.Status}}") == "running" && restartCount(t, d, "svc") == 1
	})

	// Killed during a back-off: the next daemon continues it.
	mustB(t, d, "", "run", "-d", "--name", "slow", "--restart", "always", "--label", "berth.restart.delay=2s",
		"busybox", "sh", "-c", "sleep 0.3; exit 2")
	waitFor(t, "slow to enter its back-off", 10*time.Second, func() bool {
		return inspectField(t, d, "slow", "{{.State.Status}}") == "restarting"
	})
	before := restartCount(t, d, "slow")
	d.Kill9()
	d.Restart()
	waitFor(t, "slow to be restarted after the daemon restart", 10*time.Second, func() bool {
		return restartCount(t, d, "slow") > before
	})
	if ps := mustB(t, d, "", "ps", "-a", "--filter", "name=slow", "--format", "{{.Status}}"); ps == "" {
		t.Fatal("ps shows nothing for slow")
	}
	// unless-stopped after a manual stop stays stopped across a restart.
	mustB(t, d, "", "run", "-d", "--name", "us", "--restart", "unless-stopped", "busybox", "sleep", "1000")
	mustB(t, d, "", "stop", "-t", "0", "us")
	d.Kill9()
	d.Restart()
	time.Sleep(500 * time.Millisecond)
	if st := inspectField(t, d, "us", "{{.State.Status}}"); st != "exited" {
		t.Fatalf("unless-stopped, stopped by hand, after a daemon restart: %s", st)
	}
}
