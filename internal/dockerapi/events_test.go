package dockerapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/events"

	berthevents "github.com/berth-dev/berth/internal/events"
	"github.com/berth-dev/berth/internal/images"
	"github.com/berth-dev/berth/internal/remote"
	"github.com/berth-dev/berth/internal/volumes"
)

// newEventServer is newServer with an event log.
func newEventServer(t testing.TB) (*Server, *berthevents.Log) {
	t.Helper()
	root := t.TempDir()
	svc, err := images.New(root, remote.New(remote.Options{CertsDirs: []string{}, Attempts: 1}))
	if err != nil {
		t.Fatal(err)
	}
	vs, err := volumes.New(root)
	if err != nil {
		t.Fatal(err)
	}
	log, err := berthevents.Open(filepath.Join(root, "events"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return New(Options{Images: svc, Volumes: vs, Events: log, Version: "test", Root: root}), log
}

// unixTime is a time as the docker CLI sends since and until.
func unixTime(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }

// wireLine is an event line with the fields dockerd sent before API 1.52.
type wireLine struct {
	Status, ID, From string
	events.Message
}

// readEvents decodes a finished event stream.
func readEvents(t testing.TB, body string) []wireLine {
	t.Helper()
	var out []wireLine
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		var m wireLine
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("event line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// eventSummary is "type action actor name" per event, for comparisons.
func eventSummary(ms []wireLine) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", m.Type, m.Action, m.Actor.ID, m.Actor.Attributes["name"])))
	}
	return out
}

func TestEventsRouteNeedsLog(t *testing.T) {
	wantStatus(t, do(t, newServer(t), "GET", "/events", nil), 404)
}

func TestEventsPast(t *testing.T) {
	s, log := newEventServer(t)
	log.Publish(events.ContainerEventType, events.ActionStart, "c1", map[string]string{"image": "busybox", "name": "web"})
	log.Publish(events.VolumeEventType, events.ActionCreate, "v1", map[string]string{"driver": "local"})
	log.Publish(events.ImageEventType, events.ActionPull, "busybox:latest", map[string]string{"name": "busybox"})
	recorded, _ := log.Subscribe(context.Background(), time.Unix(0, 1), time.Now(), nil)
	if len(recorded) != 3 {
		t.Fatalf("recorded %d events, want 3", len(recorded))
	}
	until := unixTime(time.Now())
	get := func(q url.Values) []string {
		t.Helper()
		q.Set("until", until)
		rec := do(t, s, "GET", "/v1.41/events?"+q.Encode(), nil)
		wantStatus(t, rec, 200)
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		return eventSummary(readEvents(t, rec.Body.String()))
	}
	all := []string{"container start c1 web", "volume create v1", "image pull busybox:latest busybox"}
	tests := []struct {
		name string
		q    url.Values
		want []string
	}{
		{"since 0", url.Values{"since": {"0"}}, all},
		{"until alone", url.Values{}, all},
		{"since the second, to the nanosecond", url.Values{"since": {unixTime(time.Unix(0, recorded[1].TimeNano))}}, all[1:]},
		{"just after the second", url.Values{"since": {unixTime(time.Unix(0, recorded[1].TimeNano+1))}}, all[2:]},
		{"RFC 3339", url.Values{"since": {time.Unix(0, recorded[2].TimeNano).Format(time.RFC3339Nano)}}, all[2:]},
		{"a duration ago", url.Values{"since": {"1h"}}, all},
		{"type filter", url.Values{"since": {"0"}, "filters": {`{"type":{"volume":true}}`}}, all[1:2]},
		{"legacy filter form", url.Values{"since": {"0"}, "filters": {`{"image":["busybox"]}`}}, []string{all[0], all[2]}},
		{"container filter", url.Values{"since": {"0"}, "filters": {`{"container":["web"],"event":["start"]}`}}, all[:1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := get(tt.q); !cmp.Equal(got, tt.want) {
				t.Errorf("events?%s = %q, want %q", tt.q.Encode(), got, tt.want)
			}
		})
	}

	// Old API versions carry status, id and from.
	rec := do(t, s, "GET", "/v1.41/events?since=0&until="+until, nil)
	lines := readEvents(t, rec.Body.String())
	if got := lines[0]; got.Status != "start" || got.ID != "c1" || got.From != "busybox" || got.Scope != "local" || got.TimeNano != recorded[0].TimeNano {
		t.Errorf("container event %+v: want status, id, from, scope and time", got)
	}
	if got := lines[1]; got.Status != "" || got.ID != "" {
		t.Errorf("volume event %+v: want no status or id", got)
	}
}

func TestEventsErrors(t *testing.T) {
	s, _ := newEventServer(t)
	tests := []struct {
		query, msg string
	}{
		{"filters=" + url.QueryEscape(`{"bogus":["1"]}`), "invalid filter 'bogus'"},
		{"filters=" + url.QueryEscape(`{"type":`), "invalid filters"},
		{"since=yesterday", `invalid time "yesterday"`},
		{"until=1.x", `invalid time "1.x"`},
		{"since=200&until=100", "`since` time (200) cannot be after `until` time (100)"},
	}
	for _, tt := range tests {
		rec := do(t, s, "GET", "/events?"+tt.query, nil)
		wantStatus(t, rec, 400)
		var body errorBody
		decode(t, rec, &body)
		if !strings.Contains(body.Message, tt.msg) {
			t.Errorf("events?%s: message %q, want %q", tt.query, body.Message, tt.msg)
		}
	}
}

// openStream starts GET /events on a test server and returns a reader of
// its events; the response header must come before any event does.
func openStream(t *testing.T, ctx context.Context, base, query string) (*http.Response, *json.Decoder) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/v1.50/events?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("events: status %d: %s", resp.StatusCode, b)
	}
	return resp, json.NewDecoder(resp.Body)
}

func nextEvent(t *testing.T, dec *json.Decoder) wireLine {
	t.Helper()
	var m wireLine
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("reading the event stream: %v", err)
	}
	return m
}

func TestEventsStream(t *testing.T) {
	s, _ := newEventServer(t)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, dec := openStream(t, ctx, srv.URL, "filters="+url.QueryEscape(`{"type":["volume"]}`))

	post := func(method, path, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: status %d", method, path, resp.StatusCode)
		}
	}
	post("POST", "/volumes/create", `{"Name":"data1"}`)
	post("DELETE", "/volumes/data1", "")
	got := []wireLine{nextEvent(t, dec), nextEvent(t, dec)}
	if diff := cmp.Diff([]string{"volume create data1", "volume destroy data1"}, eventSummary(got)); diff != "" {
		t.Errorf("live events (-want +got):\n%s", diff)
	}
	if got[0].Actor.Attributes["driver"] != "local" {
		t.Errorf("volume create attributes %v, want driver=local", got[0].Actor.Attributes)
	}
	if got[0].Status != "" {
		t.Errorf("API 1.50 volume event has status %q", got[0].Status)
	}

	// A stream with an until ends by itself.
	now := time.Now()
	_, dec = openStream(t, ctx, srv.URL, "since="+unixTime(now)+"&until="+unixTime(now.Add(300*time.Millisecond)))
	done := make(chan error, 1)
	go func() {
		var m wireLine
		done <- dec.Decode(&m)
	}()
	select {
	case err := <-done:
		if err != io.EOF {
			t.Errorf("stream with until: %v, want its end", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream with until still open after 10s")
	}
}

func TestImageAndVolumeEvents(t *testing.T) {
	s, log := newEventServer(t)
	id := importImage(t, s, "example.com/app", "1", map[string]string{"etc/": "", "etc/hello": "hi\n"})
	wantStatus(t, do(t, s, "POST", "/images/example.com/app:1/tag?repo=example.com/app&tag=2", nil), 201)
	wantStatus(t, do(t, s, "GET", "/images/get?names=example.com/app", nil), 200)
	wantStatus(t, do(t, s, "DELETE", "/images/example.com/app:2", nil), 200)
	wantStatus(t, do(t, s, "DELETE", "/images/"+id, nil), 200)
	wantStatus(t, do(t, s, "POST", "/volumes/create", strings.NewReader(`{"Name":"v1"}`)), 201)
	wantStatus(t, do(t, s, "POST", "/v1.42/volumes/prune?filters="+url.QueryEscape(`{"all":["true"]}`), nil), 200)

	past, _ := log.Subscribe(context.Background(), time.Unix(0, 1), time.Now(), nil)
	var got []wireLine
	for _, m := range past {
		got = append(got, wireLine{Message: m})
	}
	want := []string{
		"image tag " + id + " example.com/app:1",
		"image import " + id + " " + id,
		"image tag " + id + " example.com/app:2",
		"image save " + id + " " + id,
		"image untag " + id + " " + id,
		"image untag " + id + " " + id,
		"image delete " + id + " " + id,
		"volume create v1",
		"volume destroy v1",
		"volume prune",
	}
	if diff := cmp.Diff(want, eventSummary(got)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if n := len(got); n == len(want) {
		if r := got[n-1].Actor.Attributes["reclaimed"]; r == "" {
			t.Errorf("volume prune attributes %v, want reclaimed", got[n-1].Actor.Attributes)
		}
	}
}

// TestEventsEndAtShutdown: Serve's shutdown ends event streams at once
// rather than waiting for them.
func TestEventsEndAtShutdown(t *testing.T) {
	s, _ := newEventServer(t)
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, l) }()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://berth/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	cancel()
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Errorf("reading the stream: %v", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v with an event stream open, want well under the 10s grace", d)
	}
}

// TestDockerCLIEvents: docker events reads berth's stream, with its
// filters, --since/--until and --format.
func TestDockerCLIEvents(t *testing.T) {
	requireDocker(t)
	s, _ := newEventServer(t)
	d := serveDocker(t, s)
	d.ok("volume", "create", "--label", "team=core", "v1")
	d.ok("volume", "rm", "v1")
	until := unixTime(time.Now())

	out := d.ok("events", "--since", "0", "--until", until)
	line := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) volume create v1 \(driver=local\)$`)
	if !line.MatchString(out) {
		t.Errorf("docker events:\n%s\nwant a line matching %s", out, line)
	}
	out = d.ok("events", "--since", "1h", "--until", until, "--filter", "event=destroy", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}")
	if got, want := strings.TrimSpace(out), "volume destroy v1 local"; got != want {
		t.Errorf("docker events --filter --format = %q, want %q", got, want)
	}
	out = d.ok("events", "--since", "0", "--until", until, "--filter", "type=volume", "--format", "{{json .}}")
	lines := readEvents(t, out)
	if len(lines) != 2 || lines[0].Actor.ID != "v1" || lines[0].Scope != "local" || lines[0].TimeNano == 0 {
		t.Errorf("docker events --format '{{json .}}':\n%s", out)
	}
	if _, errOut, err := d.run(nil, "events", "--since", "0", "--until", until, "--filter", "bogus=1"); err == nil || !strings.Contains(errOut, "invalid filter 'bogus'") {
		t.Errorf("docker events --filter bogus=1: %v, stderr %q", err, errOut)
	}
}
