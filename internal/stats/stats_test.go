package stats

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/moby/moby/api/types/container"
)

// writeTree creates files (path relative to dir -> content).
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const (
	procStat = `cpu  100 2 30 4000 5 6 7 8 9 10
cpu0 50 1 15 2000 2 3 3 4 0 0
cpu1 50 1 15 2000 3 3 4 4 0 0
intr 12345
ctxt 678
`
	meminfo    = "MemTotal:        2048000 kB\nMemFree:          100000 kB\n"
	netDevFile = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0:    5000      50    1    2    0     0          0         0     3000      30    3    4    0     0       0          0
  eth1:12      1    0    0    0     0          0         0       34       2    0    0    0     0       0          0
`
)

// fakeProc is a /proc with a host and process 42.
func fakeProc(t *testing.T) string {
	proc := t.TempDir()
	writeTree(t, proc, map[string]string{"stat": procStat, "meminfo": meminfo, "42/net/dev": netDevFile})
	return proc
}

var (
	hostMem    = uint64(2048000 * 1024)
	hostCPU    = uint64(100+2+30+4000+5+6+7) * 1e7 // the first seven fields, in ns
	wantNetDev = map[string]container.NetworkStats{
		"eth0": {RxBytes: 5000, RxPackets: 50, RxErrors: 1, RxDropped: 2, TxBytes: 3000, TxPackets: 30, TxErrors: 3, TxDropped: 4},
		"eth1": {RxBytes: 12, RxPackets: 1, TxBytes: 34, TxPackets: 2},
	}
	// ignoreRead leaves out the sample's time, which is now.
	ignoreRead = cmpopts.IgnoreFields(container.StatsResponse{}, "Read")
)

func TestSampleV1(t *testing.T) {
	root := t.TempDir()
	cg := "/berth/abc"
	writeTree(t, root, map[string]string{
		"cpuacct" + cg + "/cpuacct.usage":                           "123456789\n",
		"cpuacct" + cg + "/cpuacct.usage_percpu":                    "100000000 23456789 \n",
		"cpuacct" + cg + "/cpuacct.stat":                            "user 7\nsystem 3\n",
		"cpu" + cg + "/cpu.stat":                                    "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n",
		"memory" + cg + "/memory.usage_in_bytes":                    "10485760\n",
		"memory" + cg + "/memory.limit_in_bytes":                    "9223372036854771712\n",
		"memory" + cg + "/memory.max_usage_in_bytes":                "20971520\n",
		"memory" + cg + "/memory.failcnt":                           "0\n",
		"memory" + cg + "/memory.stat":                              "cache 4096\nrss 8192\ntotal_inactive_file 2048\n",
		"blkio" + cg + "/blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n",
		"blkio" + cg + "/blkio.throttle.io_service_bytes":           "8:0 Read 1\n",
		// No io_serviced_recursive: an old kernel; the plain file serves.
		"blkio" + cg + "/blkio.throttle.io_serviced": "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
		"pids" + cg + "/pids.current":                "3\n",
		"pids" + cg + "/pids.max":                    "max\n",
	})
	r := &Reader{root: root, proc: fakeProc(t)}
	got, err := r.Sample(cg, 42)
	if err != nil {
		t.Fatal(err)
	}
	want := container.StatsResponse{
		OSType: "linux",
		CPUStats: container.CPUStats{
			CPUUsage:       container.CPUUsage{TotalUsage: 123456789, PercpuUsage: []uint64{100000000, 23456789}, UsageInUsermode: 70000000, UsageInKernelmode: 30000000},
			SystemUsage:    hostCPU,
			OnlineCPUs:     2,
			ThrottlingData: container.ThrottlingData{Periods: 10, ThrottledPeriods: 2, ThrottledTime: 5000},
		},
		MemoryStats: container.MemoryStats{
			Usage: 10485760, MaxUsage: 20971520, Limit: hostMem,
			Stats: map[string]uint64{"cache": 4096, "rss": 8192, "total_inactive_file": 2048},
		},
		BlkioStats: container.BlkioStats{
			IoServiceBytesRecursive: []container.BlkioStatEntry{
				{Major: 8, Op: "Read", Value: 4096}, {Major: 8, Op: "Write", Value: 8192}, {Major: 8, Op: "Sync"},
				{Major: 8, Op: "Async", Value: 12288}, {Major: 8, Op: "Discard"}, {Major: 8, Op: "Total", Value: 12288},
			},
			IoServicedRecursive: []container.BlkioStatEntry{{Major: 8, Op: "Read", Value: 1}, {Major: 8, Op: "Write", Value: 2}},
		},
		PidsStats: container.PidsStats{Current: 3},
		Networks:  wantNetDev,
	}
	if diff := cmp.Diff(want, got, ignoreRead); diff != "" {
		t.Errorf("Sample() mismatch (-want +got):\n%s", diff)
	}
	if got.Read.IsZero() {
		t.Errorf("Sample().Read is zero")
	}
}

func TestSampleV1Limits(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"memory/c/memory.limit_in_bytes": "104857600\n",
		"pids/c/pids.max":                "64\n",
	})
	got, err := (&Reader{root: root, proc: fakeProc(t)}).Sample("c", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.MemoryStats.Limit != 104857600 || got.PidsStats.Limit != 64 {
		t.Errorf("limits = %d memory, %d pids, want 104857600, 64", got.MemoryStats.Limit, got.PidsStats.Limit)
	}
	if got.Networks != nil {
		t.Errorf("Networks = %v with pid 0, want nil", got.Networks)
	}
}

func TestSampleV2(t *testing.T) {
	root := t.TempDir()
	cg := "/berth/abc"
	writeTree(t, root, map[string]string{
		"cgroup.controllers":    "cpuset cpu io memory hugetlb pids rdma misc\n",
		cg + "/cpu.stat":        "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 30\nnr_bursts 0\n",
		cg + "/memory.current":  "3145728\n",
		cg + "/memory.max":      "max\n",
		cg + "/memory.peak":     "4194304\n",
		cg + "/memory.events":   "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\n",
		cg + "/memory.stat":     "anon 1048576\nfile 2097152\ninactive_file 1048576\nactive_file 4096\n",
		cg + "/io.stat":         "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=1 wbytes=0 rios=1 wios=0\n",
		cg + "/pids.current":    "2\n",
		cg + "/pids.max":        "100\n",
		cg + "/cgroup.procs":    "42\n",
		cg + "/memory.swap.max": "max\n",
	})
	got, err := (&Reader{root: root, proc: fakeProc(t)}).Sample(cg, 42)
	if err != nil {
		t.Fatal(err)
	}
	want := container.StatsResponse{
		OSType: "linux",
		CPUStats: container.CPUStats{
			CPUUsage:       container.CPUUsage{TotalUsage: 2500000, UsageInUsermode: 2000000, UsageInKernelmode: 500000},
			SystemUsage:    hostCPU,
			OnlineCPUs:     2,
			ThrottlingData: container.ThrottlingData{Periods: 4, ThrottledPeriods: 1, ThrottledTime: 30000},
		},
		MemoryStats: container.MemoryStats{
			Usage: 3145728, MaxUsage: 4194304, Limit: hostMem, Failcnt: 2,
			Stats: map[string]uint64{"anon": 1048576, "file": 2097152, "inactive_file": 1048576, "active_file": 4096},
		},
		BlkioStats: container.BlkioStats{
			IoServiceBytesRecursive: []container.BlkioStatEntry{
				{Major: 8, Op: "read", Value: 4096}, {Major: 8, Op: "write", Value: 8192},
				{Major: 253, Minor: 1, Op: "read", Value: 1}, {Major: 253, Minor: 1, Op: "write"},
			},
			IoServicedRecursive: []container.BlkioStatEntry{
				{Major: 8, Op: "read", Value: 1}, {Major: 8, Op: "write", Value: 2},
				{Major: 253, Minor: 1, Op: "read", Value: 1}, {Major: 253, Minor: 1, Op: "write"},
			},
		},
		PidsStats: container.PidsStats{Current: 2, Limit: 100},
		Networks:  wantNetDev,
	}
	if diff := cmp.Diff(want, got, ignoreRead); diff != "" {
		t.Errorf("Sample() mismatch (-want +got):\n%s", diff)
	}
}

func TestSampleV2Limit(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"cgroup.controllers": "memory\n", "c/memory.max": "268435456\n"})
	got, err := (&Reader{root: root, proc: fakeProc(t)}).Sample("/c", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.MemoryStats.Limit != 268435456 {
		t.Errorf("Limit = %d, want 268435456", got.MemoryStats.Limit)
	}
	// Without /proc/meminfo there is nothing to cap "max" at.
	proc := t.TempDir()
	writeTree(t, proc, map[string]string{"stat": procStat})
	writeTree(t, root, map[string]string{"c/memory.max": "max\n"})
	got, err = (&Reader{root: root, proc: proc}).Sample("/c", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.MemoryStats.Limit != math.MaxUint64 {
		t.Errorf("Limit = %d without meminfo, want MaxUint64", got.MemoryStats.Limit)
	}
}

// TestSampleMissing: a stopped container (no cgroup, no process) and a
// host without controllers give a zero sample, not an error.
func TestSampleMissing(t *testing.T) {
	for _, v2 := range []bool{false, true} {
		root := t.TempDir()
		if v2 {
			writeTree(t, root, map[string]string{"cgroup.controllers": ""})
		}
		got, err := (&Reader{root: root, proc: fakeProc(t)}).Sample("/berth/gone", 99)
		if err != nil {
			t.Fatalf("v2=%v: Sample() error %v", v2, err)
		}
		want := container.StatsResponse{OSType: "linux", CPUStats: container.CPUStats{SystemUsage: hostCPU, OnlineCPUs: 2}}
		if diff := cmp.Diff(want, got, ignoreRead); diff != "" {
			t.Errorf("v2=%v: Sample() mismatch (-want +got):\n%s", v2, diff)
		}
	}
	// Nothing at all, not even /proc.
	if _, err := (&Reader{root: "/nonexistent", proc: "/nonexistent"}).Sample("/x", 1); err != nil {
		t.Errorf("Sample() on nothing: %v", err)
	}
}

// TestSampleOddContents: garbage never panics and leaves fields zero.
func TestSampleOddContents(t *testing.T) {
	odd := []string{"", "\n", "max", "-1", "x y z", "18446744073709551616", "1:2", ":", "8:0", "8:0 Read", "a:b c d",
		"8:0 rbytes", "8:0 rbytes=x =", "cpu", "cpu x", "lo", "eth0: 1 2", "\x00\xff", "Total", "user\nsystem x"}
	names := []string{"cpuacct/c/cpuacct.usage", "cpuacct/c/cpuacct.usage_percpu", "cpuacct/c/cpuacct.stat", "cpu/c/cpu.stat",
		"memory/c/memory.usage_in_bytes", "memory/c/memory.stat", "blkio/c/blkio.throttle.io_service_bytes_recursive",
		"pids/c/pids.max", "c/io.stat", "c/cpu.stat", "c/memory.max", "c/memory.stat"}
	for _, content := range odd {
		for _, v2 := range []bool{false, true} {
			root, proc := t.TempDir(), t.TempDir()
			files := map[string]string{"stat": content, "meminfo": content, "1/net/dev": content}
			writeTree(t, proc, files)
			tree := map[string]string{}
			for _, n := range names {
				tree[n] = content
			}
			if v2 {
				tree["cgroup.controllers"] = ""
			}
			writeTree(t, root, tree)
			if _, err := (&Reader{root: root, proc: proc}).Sample("c", 1); err != nil {
				t.Errorf("Sample() with %q: %v", content, err)
			}
		}
	}
}

// TestSampleUnreadable: a file that exists but cannot be read (here a
// directory where a number belongs) is an error; the rest still fills in.
func TestSampleUnreadable(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"memory/c/memory.usage_in_bytes/x": "", "pids/c/pids.current": "3\n"})
	got, err := (&Reader{root: root, proc: fakeProc(t)}).Sample("c", 0)
	if err == nil {
		t.Errorf("Sample() with an unreadable file: no error")
	}
	if got.PidsStats.Current != 3 {
		t.Errorf("PidsStats.Current = %d, want 3", got.PidsStats.Current)
	}
}
