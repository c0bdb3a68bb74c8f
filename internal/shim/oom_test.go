package shim

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOOMKilled reads the oom_kill counter the way each cgroup version
// lays it out; the v1 layout is also exercised for real by the e2e memory
// hog test on this machine, the v2 one only here.
func TestOOMKilled(t *testing.T) {
	write := func(t *testing.T, path, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bundle := func(t *testing.T, cgroupsPath string) string {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "config.json"), `{"linux":{"cgroupsPath":"`+cgroupsPath+`"}}`)
		return dir
	}
	for _, tc := range []struct {
		name, file, body string
		want             int64
	}{
		{"v2 killed", "berth/c1/memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n", 1},
		{"v2 not killed", "berth/c1/memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n", 0},
		{"v1 killed", "memory/berth/c1/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", 2},
		{"v1 not killed", "memory/berth/c1/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", 0},
		{"v1 kernel without the counter", "memory/berth/c1/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, filepath.Join(root, tc.file), tc.body)
			if got := oomKillsIn(root, bundle(t, "/berth/c1")); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("relative or missing cgroups path", func(t *testing.T) {
		root := t.TempDir()
		write(t, filepath.Join(root, "berth/c1/memory.events"), "oom_kill 1\n")
		if oomKillsIn(root, bundle(t, "berth/c1")) != 0 {
			t.Error("a relative cgroupsPath was followed")
		}
		if oomKillsIn(root, t.TempDir()) != 0 {
			t.Error("a bundle without config.json reported an OOM kill")
		}
	})
}
