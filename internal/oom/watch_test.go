package oom

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The v2 path on a plain file: inotify reports the writes as the kernel's
// memory.events updates, and only a growing oom_kill counts.
func TestWatchV2File(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("memory\n"), 0o644)
	dir := filepath.Join(root, "berth", "c1")
	os.MkdirAll(dir, 0o755)
	events := filepath.Join(dir, "memory.events")
	write := func(oom, kill int) {
		t.Helper()
		s := fmt.Sprintf("low 0\nhigh 0\nmax 3\noom %d\noom_kill %d\n", oom, kill)
		if err := os.WriteFile(events, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(1, 1) // a kill reported before the watch
	got := make(chan int64, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done, err := Watch(ctx, root, "/berth/c1", 1, func(n int64) { got <- n })
	if err != nil {
		t.Fatal(err)
	}
	write(2, 1) // at the limit, nothing killed
	write(3, 2)
	select {
	case n := <-got:
		if n != 2 {
			t.Fatalf("first report %d, want 2", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no report of the kill")
	}
	select {
	case n := <-got:
		t.Fatalf("unexpected report %d", n)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not end with its context")
	}

	// A watcher that comes back (a restarted daemon) reports at once the
	// kills it has not seen.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	done, err = Watch(ctx, root, "/berth/c1", 0, func(n int64) { got <- n })
	if err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n != 2 {
			t.Fatalf("catch-up report %d, want 2", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no catch-up report")
	}
	// The group is removed: IN_IGNORED wakes the watch, which ends.
	os.Remove(events)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not end with its group")
	}
}

func TestWatchMissingGroup(t *testing.T) {
	root := t.TempDir()
	if _, err := Watch(context.Background(), root, "/nope", 0, func(int64) {}); err == nil {
		t.Fatal("watching a missing v1 group succeeded")
	}
	os.WriteFile(filepath.Join(root, "cgroup.controllers"), nil, 0o644)
	if _, err := Watch(context.Background(), root, "/nope", 0, func(int64) {}); err == nil {
		t.Fatal("watching a missing v2 group succeeded")
	}
}

// The real kernel: a process over a memory cgroup v1's limit is killed,
// and the watch reports it while the group lives on; removing the group
// ends the watch.
func TestWatchV1Kernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		t.Skip("cgroup v2 host: the v1 path cannot be exercised")
	}
	path := fmt.Sprintf("/berth-oomtest-%d", os.Getpid())
	dir := filepath.Join("/sys/fs/cgroup/memory", path)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("no memory cgroup v1: %v", err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	for _, f := range []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("16777216"), 0); err != nil && f == "memory.limit_in_bytes" {
			t.Fatal(err)
		}
	}
	got := make(chan int64, 10)
	done, err := Watch(context.Background(), "/sys/fs/cgroup", path, 0, func(n int64) { got <- n })
	if err != nil {
		t.Fatal(err)
	}
	// The hog waits for a line, so it is in the group before it grows.
	cmd := exec.Command("sh", "-c", "read x; exec tail /dev/zero")
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	stdin.Write([]byte("go\n"))
	werr := cmd.Wait()
	select {
	case n := <-got:
		if n < 1 {
			t.Fatalf("reported %d kills", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no OOM kill reported (the hog ended with %v)", werr)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not end with its group")
	}
}
