package stats

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSampleRealCgroup reads a real cgroup: it makes one (v1: in the cpu,
// cpuacct, memory and pids hierarchies; v2: in the unified one), runs a
// CPU-spinning shell in it and checks that CPU time grows between two
// samples and that memory is charged.
func TestSampleRealCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
	const root = "/sys/fs/cgroup"
	var b [6]byte
	rand.Read(b[:])
	cg := "/berth-statstest-" + hex.EncodeToString(b[:])

	var dirs []string
	if (&Reader{root: root}).unified() {
		ctl, _ := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
		for _, c := range []string{"cpu", "memory", "pids"} {
			if !slices.Contains(strings.Fields(string(ctl)), c) {
				t.Skipf("cgroup v2 without the %s controller enabled at the root", c)
			}
		}
		dirs = []string{filepath.Join(root, cg)}
	} else {
		for _, c := range []string{"cpu", "cpuacct", "memory", "pids"} {
			if _, err := os.Stat(filepath.Join(root, c, "cgroup.procs")); err != nil {
				t.Skipf("cgroup v1 without the %s controller: %v", c, err)
			}
			dirs = append(dirs, filepath.Join(root, c, cg))
		}
	}
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rmdirCgroup(t, d) })
	}

	// The shell joins the cgroups itself, then execs the spinner, so the
	// spinner's memory is charged to the new cgroup (v1 leaves charges
	// made before a move where they were).
	var script strings.Builder
	for _, d := range dirs {
		fmt.Fprintf(&script, "echo $$ > %s/cgroup.procs || exit 1\n", d)
	}
	script.WriteString("exec sh -c 'while :; do :; done'\n")
	cmd := exec.Command("sh", "-c", script.String())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Registered after the rmdirs, so it runs first: rmdir needs the
	// cgroup empty.
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	pid := strconv.Itoa(cmd.Process.Pid)
	waitFor(t, 5*time.Second, "the spinner in its cgroup", func() bool {
		for _, d := range dirs {
			b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			if !slices.Contains(strings.Fields(string(b)), pid) {
				return false
			}
		}
		return true
	})

	r := NewReader()
	first, err := r.Sample(cg, cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the interval being measured
	second, err := r.Sample(cg, cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cpu %d -> %d ns, system %d -> %d ns, memory %d of %d, pids %d",
		first.CPUStats.CPUUsage.TotalUsage, second.CPUStats.CPUUsage.TotalUsage,
		first.CPUStats.SystemUsage, second.CPUStats.SystemUsage,
		second.MemoryStats.Usage, second.MemoryStats.Limit, second.PidsStats.Current)
	if second.CPUStats.CPUUsage.TotalUsage <= first.CPUStats.CPUUsage.TotalUsage {
		t.Errorf("CPU usage %d then %d, want growth", first.CPUStats.CPUUsage.TotalUsage, second.CPUStats.CPUUsage.TotalUsage)
	}
	if second.CPUStats.SystemUsage <= first.CPUStats.SystemUsage {
		t.Errorf("system CPU usage %d then %d, want growth", first.CPUStats.SystemUsage, second.CPUStats.SystemUsage)
	}
	if second.CPUStats.OnlineCPUs == 0 {
		t.Errorf("OnlineCPUs = 0")
	}
	if second.MemoryStats.Usage == 0 || second.MemoryStats.Limit == 0 {
		t.Errorf("memory usage %d, limit %d, want both > 0", second.MemoryStats.Usage, second.MemoryStats.Limit)
	}
	if second.PidsStats.Current != 1 {
		t.Errorf("pids.current = %d, want 1", second.PidsStats.Current)
	}
	if len(second.MemoryStats.Stats) == 0 {
		t.Errorf("no memory.stat keys")
	}
}

// rmdirCgroup removes an empty cgroup, retrying while the kernel still
// counts the killed process in it.
func rmdirCgroup(t *testing.T, dir string) {
	var err error
	waitFor(t, 5*time.Second, "removing "+dir, func() bool {
		err = os.Remove(dir)
		return err == nil || errors.Is(err, os.ErrNotExist)
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for %s", what)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
