package events

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
)

// FuzzOpen opens a log whose files hold arbitrary bytes (split between
// events.log.1 and events.log). Open must not fail or panic, must load only
// events (with a type, an action and a time), and an event published after
// it must be there, last, when the log is opened again: whatever the
// files held, the new line is not glued to it.
func FuzzOpen(f *testing.F) {
	valid := `{"Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"name":"web"}},"scope":"local","time":1,"timeNano":1000000000}`
	f.Add([]byte(valid+"\n"+valid+"\n"), uint16(0))
	f.Add([]byte(valid+"\n"+valid[:30]), uint16(len(valid)+1))
	f.Add([]byte(valid+"\n{}\nnull\n[1]\n"+valid), uint16(3))
	f.Add([]byte("\x00\xff\n\n\r\n"), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		dir := t.TempDir()
		cut := int(split) % (len(data) + 1)
		if err := os.WriteFile(filepath.Join(dir, previousFile), data[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, currentFile), data[cut:], 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := Open(dir, 0)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		loaded := all(l)
		for _, m := range loaded {
			if m.Type == "" || m.Action == "" || m.TimeNano <= 0 || m.Actor.Attributes == nil {
				t.Fatalf("loaded a non-event %+v", m)
			}
		}
		l.now = func() time.Time { return time.Unix(2e9, 0) }
		l.Publish(events.ContainerEventType, events.ActionDie, "fuzz-last", map[string]string{"exitCode": "0"})
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		l, err = Open(dir, 0)
		if err != nil {
			t.Fatalf("reopening: %v", err)
		}
		defer l.Close()
		again := all(l)
		if len(again) != len(loaded)+1 || again[len(again)-1].Actor.ID != "fuzz-last" {
			t.Fatalf("reopened: %d events ending %+v, want the %d loaded and fuzz-last", len(again), again[len(again)-1], len(loaded))
		}
	})
}
