// Package oom watches a memory cgroup for OOM kills as they happen, so an
// "oom" event is published when the kernel kills a process of a container
// and not only when the container exits (a worker killed under a
// supervisor that survives would otherwise go unseen).
//
// cgroup v1 notifies through an eventfd registered in cgroup.event_control
// against memory.oom_control; cgroup v2 modifies memory.events, which
// inotify reports. Either way the oom_kill counter (kernel 4.13+) is then
// read, so only kills are reported, not every time the group was at its
// limit.
package oom

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Watch calls fn with the cgroup's oom_kill count each time it grows past
// since (the count already reported: a watcher that restarts passes what
// it saw, so kills in between are reported at once), until ctx ends or
// the cgroup is removed. root is the cgroup file
// system's mount point (/sys/fs/cgroup) and path the group's path in it,
// e.g. "/berth/<id>". It returns once the watch is armed; fn runs on the
// watcher's goroutine, and done is closed when the watch ends.
func Watch(ctx context.Context, root, path string, since int64, fn func(kills int64)) (done <-chan struct{}, err error) {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return watchV2(ctx, filepath.Join(root, path), since, fn)
	}
	return watchV1(ctx, filepath.Join(root, "memory", path), since, fn)
}

func watchV1(ctx context.Context, dir string, since int64, fn func(int64)) (<-chan struct{}, error) {
	control := filepath.Join(dir, "memory.oom_control")
	oc, err := os.Open(control)
	if err != nil {
		return nil, fmt.Errorf("watching for OOM kills: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		oc.Close()
		return nil, fmt.Errorf("watching for OOM kills: eventfd: %w", err)
	}
	// A non-blocking descriptor is pollable: Close wakes a pending Read.
	ev := os.NewFile(uintptr(efd), "oom-eventfd")
	reg := fmt.Sprintf("%d %d", efd, oc.Fd())
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(reg), 0); err != nil {
		ev.Close()
		oc.Close()
		return nil, fmt.Errorf("watching for OOM kills: registering with %s: %w", dir, err)
	}
	// The eventfd also fires when the group is removed; then the control
	// file is gone.
	return loop(ctx, ev, oc, since, true, func() (int64, bool, bool) { return read(control) }, fn), nil
}

func watchV2(ctx context.Context, dir string, since int64, fn func(int64)) (<-chan struct{}, error) {
	events := filepath.Join(dir, "memory.events")
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watching for OOM kills: inotify: %w", err)
	}
	in := os.NewFile(uintptr(ifd), "oom-inotify")
	if _, err := unix.InotifyAddWatch(ifd, events, unix.IN_MODIFY); err != nil {
		in.Close()
		return nil, fmt.Errorf("watching for OOM kills: %s: %w", events, err)
	}
	// IN_IGNORED (the group was removed) also wakes the read.
	return loop(ctx, in, nil, since, false, func() (int64, bool, bool) { return read(events) }, fn), nil
}

// loop reads f's notifications and reports growth of the counter read
// returns (retrying for a second after each when retry is set); it ends with ctx, or when read says the group is gone.
func loop(ctx context.Context, f, extra *os.File, last int64, retry bool, read func() (n int64, ok, gone bool), fn func(int64)) <-chan struct{} {
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { f.Close() })
	go func() {
		defer close(done)
		defer stop()
		defer f.Close()
		if extra != nil {
			defer extra.Close()
		}
		if n, ok, _ := read(); ok && n > last {
			last = n
			fn(n)
		}
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return // closed by ctx, or the descriptor failed
			}
			// v1 signals when the group runs out of memory, before the
			// kill is counted: look again for a moment. v2 writes
			// memory.events after counting, and on every max and high
			// event too, so it gets one look per notification.
			tries := 1
			if retry {
				tries = 50
			}
			for try := 0; try < tries; try++ {
				n, ok, gone := read()
				if gone {
					return
				}
				if ok && n > last {
					last = n
					fn(n)
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}()
	return done
}

// Kills reads the group's oom_kill counter: memory.events on cgroup v2,
// memory.oom_control on v1 (kernel 4.13+). ok is false when neither
// file has it.
func Kills(root, path string) (n int64, ok bool) {
	for _, f := range []string{
		filepath.Join(root, path, "memory.events"),                // v2
		filepath.Join(root, "memory", path, "memory.oom_control"), // v1
	} {
		if n, ok := counter(f, "oom_kill"); ok {
			return n, true
		}
	}
	return 0, false
}

// read is the oom_kill counter of a memory.oom_control or memory.events
// file, and whether the file is gone.
func read(path string) (n int64, ok, gone bool) {
	n, ok = counter(path, "oom_kill")
	if !ok {
		_, err := os.Stat(path)
		gone = errors.Is(err, fs.ErrNotExist)
	}
	return n, ok, gone
}

// counter reads "key N" from a flat-keyed cgroup file.
func counter(path, key string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
