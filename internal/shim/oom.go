package shim

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/internal/oom"
)

// oomKills is how many processes of the container the kernel's OOM
// killer killed, from its memory cgroup's oom_kill counter: memory.events
// on cgroup v2, memory.oom_control on v1 (kernel 4.13+). It must run
// before `runtime delete` removes the cgroup. The path comes from the
// bundle, as the runtime (cgroupfs driver) used it.
func oomKills(bundle string) int64 { return oomKillsIn("/sys/fs/cgroup", bundle) }

// oomKillsIn is oomKills with the cgroup file system mounted at root.
func oomKillsIn(root, bundle string) int64 {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return 0
	}
	var spec struct {
		Linux *struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if json.Unmarshal(b, &spec) != nil || spec.Linux == nil || !filepath.IsAbs(spec.Linux.CgroupsPath) {
		return 0
	}
	n, _ := oom.Kills(root, filepath.Clean(spec.Linux.CgroupsPath))
	return n
}
