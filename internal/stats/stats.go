// Package stats reads one sample of a container's resource usage: CPU,
// memory, block I/O and pids from its cgroup (v1 or v2), the host's CPU
// time and memory from /proc, and network counters from the container's
// network namespace (/proc/<pid>/net/dev). Samples come in the Docker
// Engine API's shape (container.StatsResponse) because that is the one
// place they go; the caller fills in the container's name and ID and the
// previous sample (precpu_stats).
//
// It reads files only: it never creates, moves or removes cgroups. Package
// dockerapi imports it.
package stats

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
)

// userHZ is the unit of /proc/stat and cpuacct.stat: USER_HZ ticks per
// second, which the kernel fixes at 100 for user space on every
// architecture Linux runs containers on (sysconf(_SC_CLK_TCK)); Docker
// assumes the same.
const userHZ = 100

// Reader reads samples from a cgroup file system and a proc file system.
// It holds no state between samples and is safe for concurrent use.
type Reader struct {
	// root is where the cgroup file system is mounted: the unified
	// hierarchy itself on cgroup v2, a tmpfs with one directory per
	// controller on v1.
	root string
	// proc is where procfs is mounted.
	proc string
}

// NewReader reads the host's /sys/fs/cgroup and /proc.
func NewReader() *Reader { return &Reader{root: "/sys/fs/cgroup", proc: "/proc"} }

// Sample reads a container's counters now. cgroupPath is the container's
// cgroup relative to each hierarchy's root ("/berth/<id>"). pid, when
// above zero, is a process in the container's own network namespace,
// whose interfaces other than lo become Networks, keyed by interface
// name; with 0 Networks stays nil (a container on the host's network, or
// none, has no counters of its own).
//
// Files that are missing (a controller not mounted or not enabled, a
// container that stopped meanwhile) leave their fields zero; a value that
// does not parse does too, so that one file in an unexpected format does
// not blank the whole sample. The error reports files that exist but
// cannot be read.
func (r *Reader) Sample(cgroupPath string, pid int) (container.StatsResponse, error) {
	f := &files{}
	s := container.StatsResponse{Read: time.Now().UTC(), OSType: "linux"}
	hostMem := r.host(f, &s.CPUStats)
	cg := filepath.Join("/", cgroupPath)
	if r.unified() {
		r.v2(f, filepath.Join(r.root, cg), &s)
	} else {
		r.v1(f, cg, &s)
	}
	// An unlimited cgroup reports a huge limit ("max" on v2, a page-
	// rounded 2^63 on v1); Docker shows the host's memory instead.
	if hostMem > 0 && s.MemoryStats.Limit > hostMem {
		s.MemoryStats.Limit = hostMem
	}
	if pid > 0 {
		s.Networks = netDev(f.read(filepath.Join(r.proc, strconv.Itoa(pid), "net", "dev")))
	}
	return s, f.err
}

// unified reports whether root is a cgroup v2 mount: only the unified
// hierarchy has cgroup.controllers at its root. A v1 or hybrid host has a
// tmpfs there (hybrid's v2 mount, under unified/, has no controllers).
func (r *Reader) unified() bool {
	_, err := os.Stat(filepath.Join(r.root, "cgroup.controllers"))
	return err == nil
}

// host fills the host's CPU time and online CPUs from /proc/stat, as
// Docker computes them, and returns the host's memory in bytes.
func (r *Reader) host(f *files, cpu *container.CPUStats) uint64 {
	for _, line := range strings.Split(f.read(filepath.Join(r.proc, "stat")), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		if fields[0] != "cpu" {
			cpu.OnlineCPUs++ // /proc/stat lists online CPUs only
			continue
		}
		// Docker sums user, nice, system, idle, iowait, irq and softirq
		// (not steal or guest time, which the first fields include).
		var ticks uint64
		for _, v := range fields[1:min(len(fields), 8)] {
			ticks += parseUint(v)
		}
		cpu.SystemUsage = ticks * (1e9 / userHZ)
	}
	meminfo := keyed(f.read(filepath.Join(r.proc, "meminfo")))
	return meminfo["MemTotal:"] * 1024
}

// netDev parses /proc/net/dev: two header lines, then per interface
// "name: rx bytes packets errs drop fifo frame compressed multicast tx
// bytes packets errs drop fifo colls carrier compressed".
func netDev(content string) map[string]container.NetworkStats {
	var out map[string]container.NetworkStats
	for _, line := range strings.Split(content, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "lo" || strings.ContainsAny(name, "|") {
			continue
		}
		v := strings.Fields(rest)
		if len(v) < 16 {
			continue
		}
		if out == nil {
			out = map[string]container.NetworkStats{}
		}
		out[name] = container.NetworkStats{
			RxBytes: parseUint(v[0]), RxPackets: parseUint(v[1]), RxErrors: parseUint(v[2]), RxDropped: parseUint(v[3]),
			TxBytes: parseUint(v[8]), TxPackets: parseUint(v[9]), TxErrors: parseUint(v[10]), TxDropped: parseUint(v[11]),
		}
	}
	return out
}

// files reads the files of one sample and keeps the first error other
// than absence, so a sample reads as a list of fields.
type files struct {
	err error
}

// read returns a file's content, "" when it is missing.
func (f *files) read(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		// ENODEV: a cgroup being removed; ESRCH: a process that exited
		// while its /proc directory was open.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENODEV) && !errors.Is(err, syscall.ESRCH) && f.err == nil {
			f.err = fmt.Errorf("reading container stats: %w", err)
		}
		return ""
	}
	return string(b)
}

// uint reads a file holding one number; "max" (no limit) and anything
// unparsable are 0.
func (f *files) uint(path string) uint64 { return parseUint(strings.TrimSpace(f.read(path))) }

// keyed reads a flat-keyed file ("key value" lines).
func (f *files) keyed(path string) map[string]uint64 { return keyed(f.read(path)) }

// keyed parses "key value" lines; lines of another shape are skipped.
func keyed(content string) map[string]uint64 {
	m := map[string]uint64{}
	for _, line := range strings.Split(content, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		if v, err := strconv.ParseUint(fields[1], 10, 64); err == nil {
			m[fields[0]] = v
		}
	}
	return m
}

// parseUint is a lenient ParseUint: 0 for anything else ("max", "",
// garbage).
func parseUint(s string) uint64 {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0
	}
	return v
}
