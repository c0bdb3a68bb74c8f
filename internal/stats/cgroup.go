package stats

import (
	"math"
	"path/filepath"
	"strings"

	"github.com/moby/moby/api/types/container"
)

// v1 reads a cgroup v1 container: each controller is its own hierarchy
// under root (cpu and cpuacct may be one mount with two names, which
// joins the same way).
func (r *Reader) v1(f *files, cg string, s *container.StatsResponse) {
	dir := func(ctl, file string) string { return filepath.Join(r.root, ctl, cg, file) }

	u := &s.CPUStats.CPUUsage
	u.TotalUsage = f.uint(dir("cpuacct", "cpuacct.usage"))
	for _, v := range strings.Fields(f.read(dir("cpuacct", "cpuacct.usage_percpu"))) {
		u.PercpuUsage = append(u.PercpuUsage, parseUint(v))
	}
	ticks := f.keyed(dir("cpuacct", "cpuacct.stat"))
	u.UsageInUsermode = ticks["user"] * (1e9 / userHZ)
	u.UsageInKernelmode = ticks["system"] * (1e9 / userHZ)
	cpu := f.keyed(dir("cpu", "cpu.stat"))
	s.CPUStats.ThrottlingData = container.ThrottlingData{
		Periods: cpu["nr_periods"], ThrottledPeriods: cpu["nr_throttled"], ThrottledTime: cpu["throttled_time"],
	}

	m := &s.MemoryStats
	m.Usage = f.uint(dir("memory", "memory.usage_in_bytes"))
	m.Limit = f.uint(dir("memory", "memory.limit_in_bytes"))
	m.MaxUsage = f.uint(dir("memory", "memory.max_usage_in_bytes"))
	m.Failcnt = f.uint(dir("memory", "memory.failcnt"))
	if st := f.keyed(dir("memory", "memory.stat")); len(st) > 0 {
		m.Stats = st
	}

	// The throttle files count I/O under every I/O scheduler (the CFQ
	// and BFQ ones only under theirs); kernels before 4.x lack the
	// _recursive variants, which matter only for nested cgroups.
	blkio := func(name string) []container.BlkioStatEntry {
		if e, ok := blkioV1(f.read(dir("blkio", name+"_recursive"))); ok {
			return e
		}
		e, _ := blkioV1(f.read(dir("blkio", name)))
		return e
	}
	s.BlkioStats.IoServiceBytesRecursive = blkio("blkio.throttle.io_service_bytes")
	s.BlkioStats.IoServicedRecursive = blkio("blkio.throttle.io_serviced")

	s.PidsStats.Current = f.uint(dir("pids", "pids.current"))
	s.PidsStats.Limit = f.uint(dir("pids", "pids.max"))
}

// blkioV1 parses a v1 blkio file: "major:minor Op value" lines and a
// closing "Total value" line, which is skipped. ok is false for an empty
// file (absent, or a controller that never saw I/O).
func blkioV1(content string) (entries []container.BlkioStatEntry, ok bool) {
	for _, line := range strings.Split(content, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		ok = true
		if len(fields) != 3 {
			continue
		}
		major, minor, found := strings.Cut(fields[0], ":")
		if !found {
			continue
		}
		entries = append(entries, container.BlkioStatEntry{
			Major: parseUint(major), Minor: parseUint(minor), Op: fields[1], Value: parseUint(fields[2]),
		})
	}
	return entries, ok
}

// v2 reads a cgroup v2 container from its directory in the unified
// hierarchy, converting as Docker does (microseconds to nanoseconds).
func (r *Reader) v2(f *files, dir string, s *container.StatsResponse) {
	cpu := f.keyed(filepath.Join(dir, "cpu.stat"))
	s.CPUStats.CPUUsage = container.CPUUsage{
		TotalUsage:        cpu["usage_usec"] * 1000,
		UsageInUsermode:   cpu["user_usec"] * 1000,
		UsageInKernelmode: cpu["system_usec"] * 1000,
	}
	s.CPUStats.ThrottlingData = container.ThrottlingData{
		Periods: cpu["nr_periods"], ThrottledPeriods: cpu["nr_throttled"], ThrottledTime: cpu["throttled_usec"] * 1000,
	}

	m := &s.MemoryStats
	m.Usage = f.uint(filepath.Join(dir, "memory.current"))
	switch limit := strings.TrimSpace(f.read(filepath.Join(dir, "memory.max"))); limit {
	case "max":
		m.Limit = math.MaxUint64 // Sample caps it at the host's memory
	default:
		m.Limit = parseUint(limit)
	}
	// memory.peak exists from Linux 5.19.
	m.MaxUsage = f.uint(filepath.Join(dir, "memory.peak"))
	// v2 has no failcnt; Docker reports the OOM events instead.
	m.Failcnt = f.keyed(filepath.Join(dir, "memory.events"))["oom"]
	if st := f.keyed(filepath.Join(dir, "memory.stat")); len(st) > 0 {
		m.Stats = st
	}

	// io.stat: "major:minor rbytes=N wbytes=N rios=N wios=N dbytes=N
	// dios=N" per device.
	for _, line := range strings.Split(f.read(filepath.Join(dir, "io.stat")), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		major, minor, found := strings.Cut(fields[0], ":")
		if !found {
			continue
		}
		kv := map[string]uint64{}
		for _, p := range fields[1:] {
			if k, v, ok := strings.Cut(p, "="); ok {
				kv[k] = parseUint(v)
			}
		}
		entry := func(op string, v uint64) container.BlkioStatEntry {
			return container.BlkioStatEntry{Major: parseUint(major), Minor: parseUint(minor), Op: op, Value: v}
		}
		b := &s.BlkioStats
		b.IoServiceBytesRecursive = append(b.IoServiceBytesRecursive, entry("read", kv["rbytes"]), entry("write", kv["wbytes"]))
		b.IoServicedRecursive = append(b.IoServicedRecursive, entry("read", kv["rios"]), entry("write", kv["wios"]))
	}

	s.PidsStats.Current = f.uint(filepath.Join(dir, "pids.current"))
	s.PidsStats.Limit = f.uint(filepath.Join(dir, "pids.max"))
}
