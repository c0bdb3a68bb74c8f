package cli

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
)

var eventTime = time.Date(2026, 11, 22, 7, 30, 0, 123456789, time.UTC)

var testEvents = []events.Message{
	{Type: "container", Action: "start", Actor: events.Actor{ID: "0123abcd", Attributes: map[string]string{"name": "web", "image": "busybox"}},
		Scope: "local", Time: eventTime.Unix(), TimeNano: eventTime.UnixNano()},
	{Type: "volume", Action: "create", Actor: events.Actor{ID: "data", Attributes: map[string]string{}},
		Scope: "local", Time: eventTime.Unix() + 1, TimeNano: eventTime.UnixNano() + 1e9},
	{Type: "image", Action: "prune", Actor: events.Actor{Attributes: map[string]string{"reclaimed": "0"}},
		Scope: "local", Time: eventTime.Unix() + 2},
}

// streamEvents answers GET /events with testEvents, one per line, flushed
// one by one, and then ends the stream as an until that passed does.
func streamEvents(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(200)
	enc := json.NewEncoder(w)
	for _, m := range testEvents {
		enc.Encode(m)
		w.(http.Flusher).Flush()
	}
}

func TestPrintEvent(t *testing.T) {
	tests := []struct {
		m    events.Message
		want string
	}{
		{testEvents[0], "2026-11-22T07:30:00.123456789Z container start 0123abcd (image=busybox, name=web)\n"},
		{testEvents[1], "2026-11-22T07:30:01.123456789Z volume create data\n"},
		{testEvents[2], "2026-11-22T07:30:02.000000000Z image prune  (reclaimed=0)\n"},
		{events.Message{Type: "network", Action: "connect", Actor: events.Actor{ID: "n1"}}, "network connect n1\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		if err := printEvent(&b, tt.m, nil, time.UTC); err != nil {
			t.Fatal(err)
		}
		if b.String() != tt.want {
			t.Errorf("printEvent(%s %s) = %q, want %q", tt.m.Type, tt.m.Action, b.String(), tt.want)
		}
	}
}

func TestEvents(t *testing.T) {
	d := newFakeDaemon(t, map[string]http.HandlerFunc{"GET /events": streamEvents})
	local := func(m events.Message) string {
		return time.Unix(0, m.TimeNano).Format(rfc3339NanoFixed)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"events"}, local(testEvents[0]) + " container start 0123abcd (image=busybox, name=web)\n" +
			local(testEvents[1]) + " volume create data\n" +
			time.Unix(testEvents[2].Time, 0).Format(rfc3339NanoFixed) + " image prune  (reclaimed=0)\n"},
		{[]string{"system", "events", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"},
			"container start web\nvolume create <no value>\nimage prune <no value>\n"},
		{[]string{"events", "--format", "{{json .}}"}, jsonLines(t)},
		{[]string{"events", "--format", "json"}, jsonLines(t)},
		{[]string{"events", "--format", `{{.Actor.ID | upper}}`}, "0123ABCD\nDATA\n\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, stderr, code := runIn(t, "", tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if out != tt.want {
				t.Errorf("stdout:\n%s\nwant:\n%s", out, tt.want)
			}
		})
	}

	_, stderr, code := runIn(t, "", "events", "--since", "1700000000", "--until", "1700000100.5", "-f", "type=container", "--filter", "event=start", "-f", "event=die")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	sent := d.sent("GET /events")
	q, err := url.ParseQuery(strings.SplitN(sent[len(sent)-1], "?", 2)[1])
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("since") != "1700000000" || q.Get("until") != "1700000100.5" {
		t.Errorf("since=%q until=%q, want 1700000000 and 1700000100.5", q.Get("since"), q.Get("until"))
	}
	var f map[string]map[string]bool
	if err := json.Unmarshal([]byte(q.Get("filters")), &f); err != nil {
		t.Fatalf("filters %q: %v", q.Get("filters"), err)
	}
	if !f["type"]["container"] || !f["event"]["start"] || !f["event"]["die"] || len(f) != 2 {
		t.Errorf("filters sent: %v", f)
	}

	// A relative --since is a timestamp by the time it is sent.
	runIn(t, "", "events", "--since", "10m")
	sent = d.sent("GET /events")
	q, _ = url.ParseQuery(strings.SplitN(sent[len(sent)-1], "?", 2)[1])
	secs, _, _ := strings.Cut(q.Get("since"), ".")
	if sec, err := strconv.ParseInt(secs, 10, 64); err != nil || time.Since(time.Unix(sec, 0)) < 9*time.Minute {
		t.Errorf("--since 10m sent since=%q", q.Get("since"))
	}
}

func jsonLines(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, m := range testEvents {
		j, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

func TestEventsErrors(t *testing.T) {
	d := newFakeDaemon(t, map[string]http.HandlerFunc{
		"GET /events": reply(400, map[string]string{"message": "invalid filter 'bogus'"}),
	})
	tests := []struct {
		args    []string
		code    int
		mention string
	}{
		{[]string{"events", "--format", "{{.Nope}}"}, 64, "error parsing format"},
		{[]string{"events", "--format", "{{"}, 64, "error parsing format"},
		{[]string{"events", "--filter", "novalue"}, 125, `bad format of filter "novalue"`},
		{[]string{"events", "extra"}, 125, "requires exactly 0 argument"},
		{[]string{"events", "--filter", "bogus=1"}, 1, "invalid filter 'bogus'"},
		{[]string{"events", "--since", "2026-13-45"}, 1, "2026-13-45"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, stderr, code := runIn(t, "", tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.mention) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tt.code, tt.mention)
			}
		})
	}
	if n := len(d.sent("GET /events")); n != 1 {
		t.Errorf("%d requests reached the daemon, want 1 (the bad filter); the rest are refused by the CLI", n)
	}
}
