package events

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/events"

	"github.com/berth-dev/berth/internal/testutil"
)

// base is the fake clock's first time; each reading is a second later.
var base = time.Date(2026, 11, 22, 7, 30, 0, 123456789, time.UTC)

// at is the time of the i-th reading of the fake clock (from 0).
func at(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }

// fakeClock makes l's clock start at base and advance a second per
// reading.
func fakeClock(l *Log) {
	var mu sync.Mutex
	n := 0
	l.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t := at(n)
		n++
		return t
	}
}

func open(t *testing.T, dir string, max int) *Log {
	t.Helper()
	l, err := Open(dir, max)
	if err != nil {
		t.Fatalf("Open(%s, %d): %v", dir, max, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func closeLog(t *testing.T, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// all is every recorded event.
func all(l *Log) []events.Message {
	past, _ := l.Subscribe(canceled(), time.Unix(0, 1), time.Time{}, nil)
	return past
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func ids(ms []events.Message) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Actor.ID)
	}
	return out
}

func publishN(l *Log, from, to int) {
	for i := from; i < to; i++ {
		l.Publish(events.ContainerEventType, events.ActionStart, fmt.Sprint(i), nil)
	}
}

func TestPublishShape(t *testing.T) {
	l := open(t, t.TempDir(), 0)
	fakeClock(l)
	attrs := map[string]string{"image": "busybox", "name": "web"}
	l.Publish(events.ContainerEventType, events.ActionStart, "0123abcd", attrs)
	attrs["name"] = "changed by the caller"
	l.Publish(events.DaemonEventType, events.ActionReload, "d1", nil)
	got := all(l)
	want := []events.Message{
		{Type: "container", Action: "start", Actor: events.Actor{ID: "0123abcd", Attributes: map[string]string{"image": "busybox", "name": "web"}},
			Scope: "local", Time: at(0).Unix(), TimeNano: at(0).UnixNano()},
		{Type: "daemon", Action: "reload", Actor: events.Actor{ID: "d1", Attributes: map[string]string{}},
			Scope: "local", Time: at(1).Unix(), TimeNano: at(1).UnixNano()},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recorded events (-want +got):\n%s", diff)
	}
}

func TestSinceUntil(t *testing.T) {
	l := open(t, t.TempDir(), 0)
	fakeClock(l)
	publishN(l, 0, 5) // at(0) .. at(4)
	zero := time.Time{}
	tests := []struct {
		name         string
		since, until time.Time
		want         []string
	}{
		{"no bounds: no past events", zero, zero, []string{}},
		{"since the start", at(0), zero, []string{"0", "1", "2", "3", "4"}},
		{"since is inclusive", at(3), zero, []string{"3", "4"}},
		{"since between events", at(2).Add(time.Nanosecond), zero, []string{"3", "4"}},
		{"until alone", zero, at(1), []string{"0", "1"}},
		{"since and until", at(1), at(3), []string{"1", "2", "3"}},
		{"until before since", at(3), at(1), []string{}},
		{"since after every event", at(10), zero, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			past, _ := l.Subscribe(canceled(), tt.since, tt.until, nil)
			if got := ids(past); !cmp.Equal(got, tt.want) {
				t.Errorf("Subscribe(%v, %v) past = %v, want %v", tt.since, tt.until, got, tt.want)
			}
		})
	}
	past, _ := l.Subscribe(canceled(), at(0), zero, func(m events.Message) bool { return m.Actor.ID != "2" })
	if got, want := ids(past), []string{"0", "1", "3", "4"}; !cmp.Equal(got, want) {
		t.Errorf("past with a matcher = %v, want %v", got, want)
	}
}

// TestRingBound: however many events are published, at most max are kept,
// the newest, in two files, and a reopened log has the same ones.
func TestRingBound(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, 4) // two events per file
	for n := 1; n <= 11; n++ {
		publishN(l, n-1, n)
		got := ids(all(l))
		if len(got) > 4 || len(got) < min(n, 3) || got[len(got)-1] != fmt.Sprint(n-1) {
			t.Fatalf("after %d events: kept %v", n, got)
		}
	}
	closeLog(t, l)
	want := []string{"8", "9", "10"}
	lines := func(name string) int {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Count(b, []byte("\n"))
	}
	if p, c := lines("events.log.1"), lines("events.log"); p != 2 || c != 1 {
		t.Errorf("events.log.1 has %d lines, events.log %d, want 2 and 1", p, c)
	}
	l = open(t, dir, 4)
	if got := ids(all(l)); !cmp.Equal(got, want) {
		t.Errorf("reopened: kept %v, want %v", got, want)
	}
	// A log reopened with a smaller bound keeps only the newest.
	closeLog(t, l)
	l = open(t, dir, 2)
	if got := ids(all(l)); !cmp.Equal(got, []string{"9", "10"}) {
		t.Errorf("reopened with max 2: kept %v, want [9 10]", got)
	}
	publishN(l, 11, 13)
	if got := ids(all(l)); !cmp.Equal(got, []string{"11", "12"}) {
		t.Errorf("max 2 after two more: kept %v, want [11 12]", got)
	}
}

func TestReopenKeepsEvents(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, 0)
	fakeClock(l)
	l.Publish(events.VolumeEventType, events.ActionCreate, "v1", map[string]string{"driver": "local"})
	l.Publish(events.NetworkEventType, events.ActionConnect, "n1", map[string]string{"container": "c1", "name": "app", "type": "bridge"})
	before := all(l)
	closeLog(t, l)
	l.Publish(events.VolumeEventType, events.ActionDestroy, "after close", nil) // ignored

	l = open(t, dir, 0)
	if diff := cmp.Diff(before, all(l)); diff != "" {
		t.Errorf("reopened log (-before +after):\n%s", diff)
	}
	l.Publish(events.VolumeEventType, events.ActionDestroy, "v1", nil)
	closeLog(t, l)
	l = open(t, dir, 0)
	if got, want := ids(all(l)), []string{"v1", "n1", "v1"}; !cmp.Equal(got, want) {
		t.Errorf("after a second run: %v, want %v", got, want)
	}
}

// TestPersistedSoon: an event reaches the file without Close, within the
// second the package promises.
func TestPersistedSoon(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, 0)
	l.Publish(events.ImageEventType, events.ActionPull, "busybox:latest", map[string]string{"name": "busybox"})
	testutil.WaitFor(t, time.Second, "the event in events.log", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "events.log"))
		return bytes.Contains(b, []byte(`"ID":"busybox:latest"`)) && bytes.HasSuffix(b, []byte("\n"))
	})
}

func TestTornLastLine(t *testing.T) {
	line := func(id string, sec int64) string {
		return fmt.Sprintf(`{"Type":"container","Action":"start","Actor":{"ID":%q,"Attributes":{}},"scope":"local","time":%d,"timeNano":%d}`, id, sec, sec*1e9)
	}
	tests := []struct {
		name, data string
		want       []string
	}{
		{"torn", line("a", 1) + "\n" + line("b", 2) + "\n" + line("c", 3)[:40], []string{"a", "b"}},
		{"whole but unended", line("a", 1) + "\n" + line("b", 2), []string{"a", "b"}},
		{"garbage lines", "not json\n" + line("a", 1) + "\n{}\n\n" + `{"Type":"container"}` + "\n" + line("b", 2) + "\n\x00\x01", []string{"a", "b"}},
		{"empty", "", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "events.log"), []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			l := open(t, dir, 0)
			if got := ids(all(l)); !cmp.Equal(got, tt.want) {
				t.Fatalf("opened %q: events %v, want %v", tt.data, got, tt.want)
			}
			l.Publish(events.ContainerEventType, events.ActionStop, "next", nil)
			closeLog(t, l)
			l = open(t, dir, 0)
			if got, want := ids(all(l)), append(tt.want, "next"); !cmp.Equal(got, want) {
				t.Errorf("reopened: events %v, want %v", got, want)
			}
		})
	}
}

func TestLive(t *testing.T) {
	l := open(t, t.TempDir(), 0)
	ctx, cancel := context.WithCancel(context.Background())
	past, live := l.Subscribe(ctx, time.Time{}, time.Time{}, func(m events.Message) bool { return m.Type == events.VolumeEventType })
	if len(past) != 0 {
		t.Errorf("past = %v, want none", past)
	}
	l.Publish(events.ContainerEventType, events.ActionStart, "c1", nil)
	l.Publish(events.VolumeEventType, events.ActionCreate, "v1", nil)
	if m := receive(t, live); m.Actor.ID != "v1" {
		t.Errorf("live event %+v, want volume v1", m)
	}
	cancel()
	waitClosed(t, live, "after cancel")
}

func receive(t *testing.T, ch <-chan events.Message) events.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("live channel closed, want an event")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no live event within 10s")
	}
	return events.Message{}
}

// waitClosed drains ch until it is closed, failing after 10 s.
func waitClosed(t *testing.T, ch <-chan events.Message, when string) []events.Message {
	t.Helper()
	var got []events.Message
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, m)
		case <-timeout:
			t.Fatalf("%s: live channel still open after 10s", when)
		}
	}
}

func TestUntil(t *testing.T) {
	l := open(t, t.TempDir(), 0)
	publishN(l, 0, 2)
	// until in the past: past events only, and a closed channel.
	past, live := l.Subscribe(context.Background(), time.Time{}, time.Now(), nil)
	if got := ids(past); !cmp.Equal(got, []string{"0", "1"}) {
		t.Errorf("past = %v, want [0 1]", got)
	}
	waitClosed(t, live, "until in the past")

	// until soon: live events until then, then closed.
	_, live = l.Subscribe(context.Background(), time.Time{}, time.Now().Add(200*time.Millisecond), nil)
	publishN(l, 2, 3)
	got := waitClosed(t, live, "until passed")
	if !cmp.Equal(ids(got), []string{"2"}) {
		t.Errorf("live until passed = %v, want [2]", ids(got))
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	l := open(t, t.TempDir(), 0)
	_, live := l.Subscribe(context.Background(), time.Time{}, time.Time{}, nil)
	closeLog(t, l)
	waitClosed(t, live, "after Close")
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, live = l.Subscribe(context.Background(), time.Time{}, time.Time{}, nil)
	waitClosed(t, live, "subscribing after Close")

	var nl *Log
	nl.Publish(events.ContainerEventType, events.ActionStart, "x", nil)
	past, live := nl.Subscribe(context.Background(), time.Unix(1, 0), time.Time{}, nil)
	if len(past) != 0 {
		t.Errorf("nil Log past = %v", past)
	}
	waitClosed(t, live, "nil Log")
	if err := nl.Close(); err != nil {
		t.Errorf("nil Log Close: %v", err)
	}
}

// TestNoGapNoDuplicate subscribes while several goroutines publish: every
// event is either past or live, exactly once, and each publisher's events
// arrive in the order it published them.
func TestNoGapNoDuplicate(t *testing.T) {
	l := open(t, t.TempDir(), 0)
	l.buffer = 1 << 16 // this test is about gaps, not about slow readers
	const publishers, each = 4, 500
	var wg sync.WaitGroup
	start := make(chan struct{})
	for p := range publishers {
		wg.Go(func() {
			<-start
			for i := range each {
				l.Publish(events.ContainerEventType, events.ActionStart, fmt.Sprintf("%d-%d", p, i), nil)
			}
		})
	}
	close(start)
	// Subscribe somewhere in the middle of the publishing.
	testutil.WaitFor(t, 10*time.Second, "some events published", func() bool { return len(all(l)) > 0 })
	past, live := l.Subscribe(context.Background(), time.Unix(0, 1), time.Time{}, nil)
	wg.Wait()
	l.Publish(events.DaemonEventType, events.ActionReload, "end", nil)

	seen := map[string]int{}
	next := make([]int, publishers)
	check := func(m events.Message) {
		seen[m.Actor.ID]++
		var p, i int
		if _, err := fmt.Sscanf(m.Actor.ID, "%d-%d", &p, &i); err != nil {
			t.Fatalf("unexpected event %q", m.Actor.ID)
		}
		if i != next[p] {
			t.Fatalf("publisher %d: event %d after %d", p, i, next[p]-1)
		}
		next[p]++
	}
	for _, m := range past {
		check(m)
	}
	for m := range live {
		if m.Actor.ID == "end" {
			break
		}
		check(m)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s seen %d times", id, n)
		}
	}
	if len(seen) != publishers*each {
		t.Errorf("saw %d events (%d past), want %d", len(seen), len(past), publishers*each)
	}
}

// TestSlowSubscriber: a subscriber that does not read is dropped when its
// buffer is full; Publish never waits for it and others keep theirs.
func TestSlowSubscriber(t *testing.T) {
	l := open(t, t.TempDir(), 0)
	l.buffer = 8
	_, slow := l.Subscribe(context.Background(), time.Time{}, time.Time{}, nil)
	_, other := l.Subscribe(context.Background(), time.Time{}, time.Time{}, func(m events.Message) bool { return m.Actor.ID == "0" || m.Actor.ID == "30" })
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishN(l, 0, 31)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	if got := waitClosed(t, slow, "slow subscriber"); len(got) != 8 {
		t.Errorf("slow subscriber got %d events before being dropped, want 8", len(got))
	}
	if m := receive(t, other); m.Actor.ID != "0" {
		t.Errorf("other subscriber got %q first, want 0", m.Actor.ID)
	}
	if m := receive(t, other); m.Actor.ID != "30" {
		t.Errorf("other subscriber got %q second, want 30", m.Actor.ID)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(file, "events"), 0); err == nil || !strings.Contains(err.Error(), "event log") {
		t.Errorf("Open under a file: %v, want an error naming the event log", err)
	}
}
