package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/moby/sys/capability"
	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// host holds the facts about this machine that shape a spec. Generate
// probes them on each call; tests build their own.
type host struct {
	// bounding is the capability bounding set ("CAP_CHOWN", ...): what
	// --privileged and --cap-add ALL grant. A fixed list would fail on hosts
	// that lack some capability (this one lacks CAP_SYS_RESOURCE).
	bounding []string
	// sysResource reports whether we hold CAP_SYS_RESOURCE, without which a
	// container's hard rlimit cannot exceed ours.
	sysResource bool
	// hardLimits maps an RLIMIT_* number to our hard limit.
	hardLimits map[int]uint64
	// cgroup2 is true on a cgroup v2 unified host.
	cgroup2 bool
	// swapLimit and blkioWeight report cgroup features the kernel may lack.
	swapLimit, blkioWeight bool
	cpus                   int
	// thermalThrottle lists the CPUs' thermal_throttle directories, masked
	// like Docker does (they leak host activity).
	thermalThrottle []string
	// sysctls holds the sysctls that exist on the host, of those Generate
	// may add by default.
	sysctls map[string]bool
	// x32 reports whether the kernel runs x32 ABI programs; without it the
	// default seccomp profile drops its x32 section (see probeX32).
	x32 bool
}

func probeHost() (host, error) {
	h := host{
		hardLimits: map[int]uint64{},
		cgroup2:    cgroups.IsCgroup2UnifiedMode(),
		cpus:       runtime.NumCPU(),
		sysctls:    map[string]bool{},
		x32:        probeX32(),
	}
	for _, c := range capability.ListKnown() {
		// GetBound fails for capabilities newer than the kernel: skip them.
		if ok, err := capability.GetBound(c); err == nil && ok {
			h.bounding = append(h.bounding, capName(c))
		}
	}
	caps, err := capability.NewPid2(0)
	if err == nil {
		err = caps.Load()
	}
	if err != nil {
		return host{}, fmt.Errorf("reading own capabilities: %w", err)
	}
	h.sysResource = caps.Get(capability.EFFECTIVE, capability.CAP_SYS_RESOURCE)
	for r := 0; r <= unix.RLIMIT_RTTIME; r++ { // RLIMIT_RTTIME (15) is the last
		var l unix.Rlimit
		if err := unix.Getrlimit(r, &l); err == nil {
			h.hardLimits[r] = l.Max
		}
	}
	if h.cgroup2 {
		ctl, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		fields := strings.Fields(string(ctl))
		h.swapLimit = slices.Contains(fields, "memory")
		h.blkioWeight = slices.Contains(fields, "io")
	} else {
		h.swapLimit = exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
		h.blkioWeight = exists("/sys/fs/cgroup/blkio/blkio.weight") || exists("/sys/fs/cgroup/blkio/blkio.bfq.weight")
	}
	h.thermalThrottle, _ = filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle")
	for _, k := range []string{"net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"} {
		h.sysctls[k] = exists(filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/")))
	}
	return h, nil
}

// sysctlExists reports whether a default sysctl may be set: runtimes fail
// on sysctls the kernel does not have.
func (h host) sysctlExists(name string) bool { return h.sysctls[name] }

func capName(c capability.Cap) string { return "CAP_" + strings.ToUpper(c.String()) }

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
