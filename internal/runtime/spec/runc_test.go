package spec

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/testutil"
)

const runcPath = "/usr/sbin/runc"

// runInRunc generates a spec for a busybox container running script (with
// --network none) and runs it to completion with runc. It returns the
// combined output and whether the script exited 0.
func runInRunc(t *testing.T, user string, hc *container.HostConfig, script string) (string, bool) {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := os.Stat(runcPath); err != nil {
		t.Skip("runc not installed")
	}
	dir := t.TempDir()
	rootfs := testutil.BusyboxRootfs(t, filepath.Join(dir, "rootfs"))
	b := make([]byte, 6)
	rand.Read(b)
	id := "spec-" + hex.EncodeToString(b)
	parent := "berth-spec-test-" + id
	hc.NetworkMode = "none"
	hostname := filepath.Join(dir, "hostname")
	if err := os.WriteFile(hostname, []byte("berthtest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Generate(Options{
		ID:           id,
		Config:       &container.Config{Cmd: []string{"sh", "-c", script}, Hostname: "berthtest", User: user},
		HostConfig:   hc,
		Rootfs:       rootfs,
		HostnamePath: hostname,
		CgroupsPath:  "/" + parent + "/" + id,
	})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	t.Cleanup(func() {
		exec.Command(runcPath, "--root", state, "delete", "-f", id).Run()
		// runc removes the container's cgroups; remove their parent.
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + parent)
		dirs = append(dirs, "/sys/fs/cgroup/"+parent)
		for _, d := range dirs {
			os.Remove(filepath.Join(d, id))
			if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("removing cgroup %s: %v", d, err)
			}
		}
	})
	cmd := exec.Command(runcPath, "--root", state, "run", "--bundle", dir, id)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("runc run: %v", err)
	}
	return out.String(), err == nil
}

func TestRuncDefaults(t *testing.T) {
	pids := int64(50)
	out, ok := runInRunc(t, "", &container.HostConfig{Resources: container.Resources{Memory: 64 << 20, PidsLimit: &pids}}, `
		set -e
		echo hostname=$(hostname) etc=$(cat /etc/hostname)
		echo timer_list=$(wc -c < /proc/timer_list)
		echo proc_sys=$(touch /proc/sys/kernel/hostname 2>&1 || echo ro)
		echo memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
		echo pids=$(cat /sys/fs/cgroup/pids/pids.max)
		echo uid=$(id -u)
		chown 1:1 /tmp && echo chown=ok
		touch /written && echo write=ok
		echo unshare=$(unshare -U true 2>&1 && echo ok)
		echo nofile=$(ulimit -n)
	`)
	if !ok {
		t.Fatalf("container failed:\n%s", out)
	}
	for _, want := range []string{
		"hostname=berthtest etc=berthtest",
		"timer_list=0",          // masked: /dev/null over it
		"Read-only file system", // /proc/sys is read-only
		"memory=67108864",       // -m 64m
		"pids=50",               // --pids-limit 50
		"uid=0",                 //
		"chown=ok",              // CAP_CHOWN by default
		"write=ok",              // rootfs writable
		"unshare=unshare: unshare(0x10000000): Operation not permitted", // the default seccomp profile
		"nofile=1024", // default soft limit
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if host, err := os.ReadFile("/proc/timer_list"); err != nil || len(host) == 0 {
		t.Errorf("host /proc/timer_list is empty or missing, so the mask check proves nothing: %v", err)
	}
}

func TestRuncSeccompUnconfined(t *testing.T) {
	// The same unshare the default profile denies works without seccomp,
	// so the profile, not a missing capability, is what denied it.
	out, ok := runInRunc(t, "", &container.HostConfig{SecurityOpt: []string{"seccomp=unconfined"}}, `unshare -U true && echo unshare=ok`)
	if !ok || !strings.Contains(out, "unshare=ok") {
		t.Errorf("unshare without seccomp failed:\n%s", out)
	}
	// The default profile allows namespace syscalls when CAP_SYS_ADMIN is added.
	out, ok = runInRunc(t, "", &container.HostConfig{CapAdd: []string{"SYS_ADMIN"}}, `unshare -m true && echo unshare=ok`)
	if !ok || !strings.Contains(out, "unshare=ok") {
		t.Errorf("unshare with CAP_SYS_ADMIN failed:\n%s", out)
	}
}

func TestRuncCapDropAll(t *testing.T) {
	out, ok := runInRunc(t, "", &container.HostConfig{CapDrop: []string{"ALL"}}, `chown 1:1 /tmp`)
	if ok || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("chown with no capabilities: ok=%v, output:\n%s", ok, out)
	}
}

func TestRuncReadonlyRootfs(t *testing.T) {
	out, ok := runInRunc(t, "", &container.HostConfig{ReadonlyRootfs: true}, `touch /written`)
	if ok || !strings.Contains(out, "Read-only file system") {
		t.Errorf("write to read-only rootfs: ok=%v, output:\n%s", ok, out)
	}
}

func TestRuncPrivileged(t *testing.T) {
	// A fixed capability list fails on this host (no CAP_SYS_RESOURCE);
	// the host's bounding set must work.
	out, ok := runInRunc(t, "", &container.HostConfig{Privileged: true}, `grep CapBnd /proc/self/status; unshare -m true && echo unshare=ok`)
	if !ok {
		t.Fatalf("privileged container failed:\n%s", out)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "CapBnd:") && !strings.Contains(out, line) {
			t.Errorf("container's bounding set differs from the host's %q:\n%s", line, out)
		}
	}
	if !strings.Contains(out, "unshare=ok") {
		t.Errorf("privileged unshare failed:\n%s", out)
	}
}

func TestRuncUser(t *testing.T) {
	// nobody is 65534:65534 in the busybox rootfs's /etc/passwd.
	out, ok := runInRunc(t, "nobody", &container.HostConfig{GroupAdd: []string{"root"}}, `id -u; id -G; touch /etc/x 2>&1`) // one stream: the order is fixed
	if ok {
		t.Errorf("nobody could write /etc:\n%s", out)
	}
	if !strings.HasPrefix(out, "65534\n65534 0\n") || !strings.Contains(out, "Permission denied") {
		t.Errorf("output %q, want uid 65534, groups 65534 0, then Permission denied", out)
	}
}
