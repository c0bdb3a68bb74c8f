// Package events is the daemon's event bus: what happens to containers,
// images, volumes and networks, as Docker's event messages
// (github.com/moby/moby/api/types/events.Message). A Log records each event
// in a bounded log on disk, so that `events --since` reaches back across
// daemon restarts, and delivers it to live subscribers (GET /events).
//
// Order: an event's place is fixed when Publish takes the log's lock. The
// log on disk, the past events Subscribe returns and every subscriber's
// channel all hold events in that order. Times come from the wall clock,
// so they can go backwards when the clock is set back; since and until
// compare times, not places.
//
// Durability: Publish hands the event to a writer goroutine and returns; it
// reaches the file at once but without fsync (Close syncs). A crash of the
// daemon loses nothing written; a crash of the machine can lose the last
// second or so of events, and a line torn by it is dropped at the next
// Open. A write error (a full disk) is logged and the event is kept in
// memory only.
//
// Storage: JSON lines in <dir>/events.log; when it holds max/2 events it
// becomes events.log.1 (replacing the one before) and a new events.log
// starts, so at most max events are kept.
//
// Package daemon opens the Log and hands it to the packages that publish
// (engine, dockerapi); events imports no berth implementation.
package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
)

// DefaultMax is how many events a Log keeps when Open is given no bound.
const DefaultMax = 10000

// subscriberBuffer is how many events a subscriber may fall behind before
// it is dropped. It is Docker's order of magnitude (dockerd keeps 1024
// events for late readers): a burst such as `compose up` fits, a reader
// that stopped reading does not hold memory for ever.
const subscriberBuffer = 1024

const (
	currentFile  = "events.log"
	previousFile = "events.log.1"
)

// Log is the daemon's event log: a bounded on-disk ring (so `events
// --since` works across daemon restarts) plus live subscribers. A nil *Log
// is valid and records nothing, for daemons and tests without events.
type Log struct {
	dir    string
	half   int              // events per file: the current one rotates at half
	buffer int              // subscriberBuffer; tests raise it
	now    func() time.Time // time.Now; tests set a clock

	kick chan struct{} // wakes the writer; closed by Close
	done chan struct{} // closed when the writer has flushed and exited

	// mu guards prev, cur, pending, subs and closed.
	mu      sync.Mutex
	prev    []events.Message // events.log.1, oldest first
	cur     []events.Message // events.log, oldest first
	pending []segment        // encoded events the writer has not written
	subs    map[*subscriber]struct{}
	closed  bool

	// The writer goroutine alone uses f, size and err (Close reads them
	// after the writer has exited).
	f    *os.File // events.log, open for appending; nil after a failure
	size int64    // f's length: a failed write is cut back to it
	err  error    // the first write error, for Close
}

// segment is what the writer appends to one file; rotate says events.log
// becomes events.log.1 first.
type segment struct {
	rotate bool
	data   []byte
}

// subscriber is one Subscribe call's live channel.
type subscriber struct {
	ch           chan events.Message
	match        func(events.Message) bool
	since, until int64 // UnixNano; 0 is unbounded
	stop         func()
}

// Open opens or creates the log under dir (e.g. <root>/events). max bounds
// how many events are kept (DefaultMax when max <= 0; at least 2). A torn
// last line (crash mid-write) is ignored, not an error, as are lines that
// are not events.
func Open(dir string, max int) (*Log, error) {
	if max <= 0 {
		max = DefaultMax
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening the event log: %w", err)
	}
	half := max / 2
	if half < 1 {
		half = 1
	}
	l := &Log{
		dir:    dir,
		half:   half,
		buffer: subscriberBuffer,
		now:    time.Now,
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		subs:   map[*subscriber]struct{}{},
	}
	prev, err := os.ReadFile(filepath.Join(dir, previousFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening the event log: %w", err)
	}
	cur, err := os.ReadFile(filepath.Join(dir, currentFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening the event log: %w", err)
	}
	l.prev, l.cur = parse(prev), parse(cur)
	// A smaller max than the files were written with: keep the newest.
	if n := len(l.prev) + len(l.cur); n > max {
		drop := n - max
		if drop >= len(l.prev) {
			l.cur = l.cur[drop-len(l.prev):]
			l.prev = nil
		} else {
			l.prev = l.prev[drop:]
		}
	}
	if err := l.openFile(cur); err != nil {
		return nil, err
	}
	go l.write()
	return l, nil
}

// parse reads JSON lines, keeping those that are events.
func parse(data []byte) []events.Message {
	var out []events.Message
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if m, ok := decode(line); ok {
			out = append(out, m)
		}
	}
	return out
}

// decode reads one line; ok is false for anything but an event.
func decode(line []byte) (m events.Message, ok bool) {
	if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &m) != nil {
		return events.Message{}, false
	}
	if m.Type == "" || m.Action == "" || m.TimeNano <= 0 {
		return events.Message{}, false
	}
	if m.Actor.Attributes == nil {
		m.Actor.Attributes = map[string]string{}
	}
	return m, true
}

// openFile opens events.log for appending, given its contents: a last line
// without its newline is cut off when it is torn, or ended when it is a
// whole event, so the next event starts on a line of its own.
func (l *Log) openFile(data []byte) error {
	path := filepath.Join(l.dir, currentFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening the event log: %w", err)
	}
	size := int64(len(data))
	if size > 0 && data[size-1] != '\n' {
		last := bytes.LastIndexByte(data, '\n') + 1
		if _, ok := decode(data[last:]); ok {
			_, err = f.Write([]byte{'\n'})
			size++
		} else {
			err = f.Truncate(int64(last))
			size = int64(last)
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("repairing the end of the event log %s: %w", path, err)
		}
	}
	l.f, l.size = f, size
	return nil
}

// Publish records one event with Docker's shape (Scope "local", Time and
// TimeNano now) and delivers it to subscribers. It never blocks on a slow
// subscriber: one whose buffer is full is dropped (its channel closed). It
// is safe for concurrent use; after Close it does nothing.
func (l *Log) Publish(typ events.Type, action events.Action, id string, attrs map[string]string) {
	if l == nil {
		return
	}
	// A copy: the caller may reuse its map, and subscribers share this one.
	a := make(map[string]string, len(attrs))
	maps.Copy(a, attrs)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	now := l.now()
	m := events.Message{
		Type:     typ,
		Action:   action,
		Actor:    events.Actor{ID: id, Attributes: a},
		Scope:    "local",
		Time:     now.Unix(),
		TimeNano: now.UnixNano(),
	}
	line, err := json.Marshal(m)
	if err != nil {
		// Strings and numbers always encode; this is not reached.
		slog.Error("events: encoding an event", "type", typ, "action", action, "err", err)
		return
	}
	l.appendLocked(m, line)
	for s := range l.subs {
		if !s.wants(m) {
			continue
		}
		select {
		case s.ch <- m:
		default:
			slog.Warn("events: dropping a subscriber that fell behind", "buffer", cap(s.ch))
			l.dropLocked(s)
		}
	}
	select {
	case l.kick <- struct{}{}:
	default: // the writer is already due to run
	}
}

// appendLocked adds m to the memory copy and its line to what the writer
// will append, rotating when the current file is full.
func (l *Log) appendLocked(m events.Message, line []byte) {
	switch {
	case len(l.cur) >= l.half:
		// The memory copy mirrors the files: events.log.1 is replaced by
		// events.log (at most half of it, for a log opened with a smaller
		// max than it was written with).
		l.prev = l.cur[max(0, len(l.cur)-l.half):]
		l.cur = nil
		l.pending = append(l.pending, segment{rotate: true})
	case len(l.pending) == 0:
		l.pending = append(l.pending, segment{})
	}
	l.cur = append(l.cur, m)
	seg := &l.pending[len(l.pending)-1]
	seg.data = append(append(seg.data, line...), '\n')
}

func (s *subscriber) wants(m events.Message) bool {
	if (s.since != 0 && m.TimeNano < s.since) || (s.until != 0 && m.TimeNano > s.until) {
		return false
	}
	return s.match(m)
}

// Subscribe returns the recorded events with since <= time <= until (zero
// times are unbounded; a zero since and a zero until mean no past events,
// as Docker does) that match, oldest first, and a channel of the live
// events in that range that match. The channel is closed when ctx is done,
// when until passes, when the subscriber falls behind by more than 1024
// events, or when the log is closed; it is closed already when until is in
// the past. No event is both past and live, and none published after the
// call is missed.
//
// match (nil matches everything) runs under the log's lock: it must be
// quick and must not call the Log. The messages are shared: do not modify
// them or their Attributes.
func (l *Log) Subscribe(ctx context.Context, since, until time.Time, match func(events.Message) bool) (past []events.Message, live <-chan events.Message) {
	if match == nil {
		match = func(events.Message) bool { return true }
	}
	buffer := subscriberBuffer
	if l != nil {
		buffer = l.buffer
	}
	s := &subscriber{ch: make(chan events.Message, buffer), match: match}
	if !since.IsZero() {
		s.since = since.UnixNano()
	}
	if !until.IsZero() {
		s.until = until.UnixNano()
	}
	if l == nil {
		close(s.ch)
		return nil, s.ch
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !since.IsZero() || !until.IsZero() {
		for _, part := range [][]events.Message{l.prev, l.cur} {
			for _, m := range part {
				if s.wants(m) {
					past = append(past, m)
				}
			}
		}
	}
	now := l.now()
	if l.closed || ctx.Err() != nil || (s.until != 0 && !until.After(now)) {
		close(s.ch)
		return past, s.ch
	}
	l.subs[s] = struct{}{}
	// Both callbacks take l.mu, so they run after this call has returned
	// and s.stop is set.
	stopCtx := context.AfterFunc(ctx, func() { l.unsubscribe(s) })
	var timer *time.Timer
	if s.until != 0 {
		timer = time.AfterFunc(until.Sub(now), func() { l.unsubscribe(s) })
	}
	s.stop = func() {
		stopCtx()
		if timer != nil {
			timer.Stop()
		}
	}
	return past, s.ch
}

func (l *Log) unsubscribe(s *subscriber) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropLocked(s)
}

// dropLocked ends a subscription: its channel is closed once.
func (l *Log) dropLocked(s *subscriber) {
	if _, ok := l.subs[s]; !ok {
		return
	}
	delete(l.subs, s)
	close(s.ch)
	s.stop()
}

// Close ends every subscription, writes what is pending, syncs and closes
// the file. Publish does nothing afterwards. The error is the first
// failure to write since Open, if any.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for s := range l.subs {
		l.dropLocked(s)
	}
	close(l.kick)
	l.mu.Unlock()
	<-l.done
	err := l.err
	if l.f != nil {
		if serr := l.f.Sync(); serr != nil && err == nil {
			err = serr
		}
		if cerr := l.f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("closing the event log %s: %w", l.dir, err)
	}
	return nil
}

// write is the writer goroutine: it appends what Publish left pending
// each time it is kicked, and once more after Close.
func (l *Log) write() {
	defer close(l.done)
	for range l.kick {
		l.flush()
	}
	l.flush()
}

func (l *Log) flush() {
	l.mu.Lock()
	segs := l.pending
	l.pending = nil
	l.mu.Unlock()
	for _, seg := range segs {
		if seg.rotate {
			l.fail(l.rotate())
		}
		l.fail(l.append(seg.data))
	}
}

// fail notes a write error; the first one is logged (a full disk would
// otherwise log once per event) and returned by Close.
func (l *Log) fail(err error) {
	if err == nil || l.err != nil {
		return
	}
	l.err = err
	slog.Warn("events: writing the event log failed; events are kept in memory only until it works again", "dir", l.dir, "err", err)
}

// rotate makes events.log events.log.1 and starts a new events.log.
func (l *Log) rotate() error {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	cur := filepath.Join(l.dir, currentFile)
	if err := os.Rename(cur, filepath.Join(l.dir, previousFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rotating the event log: %w", err)
	}
	return l.reopen()
}

// reopen opens events.log after a rotation or a failure, ending a line
// a failed write left unfinished so that it stays a line of its own.
func (l *Log) reopen() error {
	path := filepath.Join(l.dir, currentFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening the event log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening the event log: %w", err)
	}
	size := fi.Size()
	if size > 0 {
		last := make([]byte, 1)
		if _, err = f.ReadAt(last, size-1); err == nil && last[0] != '\n' {
			_, err = f.Write([]byte{'\n'})
			size++
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("opening the event log: %w", err)
		}
	}
	l.f, l.size = f, size
	return nil
}

// append writes whole lines; a failed write is cut back, so that a line
// half written to a full disk does not glue itself to the next one.
func (l *Log) append(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if l.f == nil {
		if err := l.reopen(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(data)
	if err != nil {
		if n > 0 && l.f.Truncate(l.size) != nil {
			// Cannot cut it back: start afresh from what the file holds.
			l.f.Close()
			l.f = nil
		}
		return fmt.Errorf("writing the event log: %w", err)
	}
	l.size += int64(n)
	return nil
}
