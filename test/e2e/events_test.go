package e2e

// Events and stats, through the berth CLI and the docker CLI.

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestEventsAndStats(t *testing.T) {
	d := ctrDaemon(t, "berth")
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	mustB(t, d, "", "run", "--name", "ev1", "busybox", "true")
	// An OOM kill is an event with the container's name.
	d.Berth("", "run", "--name", "hog", "-m", "32m", "busybox", "tail", "/dev/zero")
	mustB(t, d, "", "rm", "ev1", "hog")
	mustB(t, d, "", "volume", "create", "evvol")
	mustB(t, d, "", "network", "create", "evnet")
	until := strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)
	time.Sleep(1100 * time.Millisecond) // until must be past for the stream to end

	events := func() string {
		return mustB(t, d, "", "events", "--since", since, "--until", until, "--format", "{{.Type}} {{.Action}} {{with .Actor.Attributes.name}}{{.}}{{else}}{{.Actor.ID}}{{end}}")
	}
	out := events()
	for _, want := range []string{
		"container create ev1", "container start ev1", "container die ev1", "container destroy ev1",
		"container oom hog", "container die hog",
		"volume create evvol", "network create evnet",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("events lack %q:\n%s", want, out)
		}
	}
	// Order: create before start before die before destroy.
	idx := func(s string) int { return strings.Index(out, s) }
	if !(idx("container create ev1") < idx("container start ev1") && idx("container start ev1") < idx("container die ev1") && idx("container die ev1") < idx("container destroy ev1")) {
		t.Errorf("events out of order:\n%s", out)
	}
	// die carries the exit code.
	die := mustB(t, d, "", "events", "--since", since, "--until", until, "--filter", "event=die", "--filter", "container=hog", "--format", "{{json .}}")
	var m struct {
		Actor struct{ Attributes map[string]string }
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(die)), &m); err != nil || m.Actor.Attributes["exitCode"] != "137" {
		t.Errorf("die event of hog: %q (%v)", die, err)
	}

	// The log is on disk: a daemon killed and restarted still answers
	// --since, and the docker CLI reads it too.
	d.Kill9()
	d.Restart()
	if again := events(); again != out {
		t.Errorf("events after a daemon restart differ:\nbefore:\n%s\nafter:\n%s", out, again)
	}
	if dout := mustD(t, d, "events", "--since", since, "--until", until, "--filter", "type=network", "--format", "{{.Action}} {{.Actor.Attributes.name}}"); !strings.Contains(dout, "create evnet") {
		t.Errorf("docker events: %q", dout)
	}

	// Health changes are events too.
	since = strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	mustB(t, d, "", "run", "-d", "--name", "hc", "--health-cmd", "true", "--health-interval", "200ms", "busybox", "sleep", "1000")
	waitFor(t, "hc to turn healthy", 10*time.Second, func() bool {
		return inspectField(t, d, "hc", "{{.State.Health.Status}}") == "healthy"
	})
	until = strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)
	time.Sleep(1100 * time.Millisecond)
	if hev := mustB(t, d, "", "events", "--since", since, "--until", until, "--filter", "container=hc", "--format", "{{.Action}}"); !strings.Contains(hev, "health_status: healthy") {
		t.Errorf("health events: %q", hev)
	}

	// Stats move under a CPU spinner.
	mustB(t, d, "", "run", "-d", "--name", "spin", "busybox", "sh", "-c", "while :; do :; done")
	time.Sleep(500 * time.Millisecond)
	st := mustB(t, d, "", "stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}} {{.PIDs}}", "spin")
	f := strings.Fields(st)
	if len(f) != 3 || f[0] != "spin" {
		t.Fatalf("stats: %q", st)
	}
	if cpu, err := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64); err != nil || cpu < 20 {
		t.Errorf("a spinning container's CPU: %q", f[1])
	}
	if dst := mustD(t, d, "stats", "--no-stream", "--format", "{{.Name}}", "spin"); strings.TrimSpace(dst) != "spin" {
		t.Errorf("docker stats: %q", dst)
	}
}
