// Package spec turns a Docker-style container configuration
// (container.Config and container.HostConfig from the Docker Engine API)
// into an OCI runtime spec with Docker's defaults: the process, its user and
// capabilities, namespaces, mounts, masked paths, devices, cgroup resources
// and the seccomp profile. The engine writes the result as a bundle's
// config.json; runc and berth's embedded libcontainer runtime both run it.
//
// Generate reads the container's /etc/passwd and /etc/group and a few host
// facts (the capability bounding set, RLIMIT_NOFILE, the cgroup version);
// it never writes anything. Only the engine imports this package.
//
// AppArmor and SELinux are not supported: --security-opt apparmor=... and
// label=... are accepted, so Docker configurations keep working, and have no
// effect.
package spec

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Options is everything Generate needs about one container.
type Options struct {
	// ID is the container's ID.
	ID string
	// Config is the container's config, already merged with its image's
	// config (Env, Cmd, Entrypoint, WorkingDir, User...) by the caller.
	Config *container.Config
	// HostConfig is the container's host config.
	HostConfig *container.HostConfig
	// Rootfs is the absolute path of the container's mounted root filesystem.
	Rootfs string
	// Mounts are the user's volume, bind and tmpfs mounts, resolved by the
	// caller (see ParseMounts and Mount.Spec). Generate sorts them so that
	// parents mount before their children.
	Mounts []specs.Mount
	// HostnamePath, HostsPath and ResolvConfPath are files the caller wrote;
	// each is bind-mounted at /etc/hostname, /etc/hosts and /etc/resolv.conf
	// unless empty or a user mount covers that path.
	HostnamePath, HostsPath, ResolvConfPath string
	// CgroupsPath is the container's cgroup, such as "/berth/<id>".
	CgroupsPath string
	// InitPath is the host path of the binary run as PID 1 when --init is
	// set; see InitDestination.
	InitPath string
	// NetNSPath is a network namespace to join. When empty the container
	// gets a new network namespace, or none for --network host.
	NetNSPath string
}

// InitDestination is where InitPath is bind-mounted (read-only) for --init.
// The process's args become [InitDestination, "--", original args...]: the
// binary, seeing argv[0] "berth-init", forwards signals and reaps zombies.
const InitDestination = "/sbin/berth-init"

// DefaultPathEnv is the PATH a container gets when its config sets none.
const DefaultPathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultShmSize is the size of /dev/shm when HostConfig.ShmSize is 0: 64 MiB.
const DefaultShmSize = 64 << 20

// Generate returns the OCI runtime spec for o. Bad configuration is an
// errdefs.ErrInvalidArgument error naming the flag and value.
func Generate(o Options) (*specs.Spec, error) {
	h, err := probeHost()
	if err != nil {
		return nil, err
	}
	return generate(o, h)
}

// generate is Generate with the host facts passed in, so tests can vary them.
func generate(o Options, h host) (*specs.Spec, error) {
	if o.Config == nil || o.HostConfig == nil {
		return nil, errdefs.Invalidf("generating spec for container %s: config and host config are required", o.ID)
	}
	if !path.IsAbs(o.Rootfs) {
		return nil, errdefs.Invalidf("generating spec for container %s: rootfs %q is not an absolute path", o.ID, o.Rootfs)
	}
	c, hc := o.Config, o.HostConfig
	sec, err := parseSecurityOpts(hc.SecurityOpt)
	if err != nil {
		return nil, err
	}

	s := &specs.Spec{
		Version:     specs.Version,
		Root:        &specs.Root{Path: o.Rootfs, Readonly: hc.ReadonlyRootfs},
		Hostname:    c.Hostname,
		Annotations: maps.Clone(hc.Annotations),
		Linux: &specs.Linux{
			CgroupsPath: o.CgroupsPath,
			Sysctl:      map[string]string{},
			Resources:   &specs.LinuxResources{},
		},
	}
	if s.Process, err = process(o, h); err != nil {
		return nil, err
	}
	s.Process.NoNewPrivileges = sec.noNewPrivileges
	if err := setNamespaces(s, o, h); err != nil {
		return nil, err
	}
	if err := setSysctls(s, hc, h); err != nil {
		return nil, err
	}
	if s.Process.Capabilities, err = capabilities(hc, h); err != nil {
		return nil, err
	}
	if err := setDevices(s, hc); err != nil {
		return nil, err
	}
	if err := setResources(s.Linux.Resources, hc, h); err != nil {
		return nil, err
	}
	if err := setMounts(s, o, sec); err != nil {
		return nil, err
	}
	setPaths(s, hc, sec, h)
	if s.Linux.Seccomp, err = seccompProfile(s, hc, sec, h); err != nil {
		return nil, err
	}
	return s, nil
}

// process builds the container's PID 1: args, env, cwd, user, rlimits.
func process(o Options, h host) (*specs.Process, error) {
	c, hc := o.Config, o.HostConfig
	args := append(slices.Clone(c.Entrypoint), c.Cmd...)
	if len(args) == 0 {
		return nil, errdefs.Invalidf("no command specified")
	}
	if useInit(hc) {
		if o.InitPath == "" {
			return nil, errdefs.FailedPrecondition(fmt.Errorf("--init: no init binary configured"))
		}
		args = append([]string{InitDestination, "--"}, args...)
	}
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, errdefs.Invalidf("--workdir %q: the working directory must be an absolute path", c.WorkingDir)
	}
	env, err := environment(c)
	if err != nil {
		return nil, err
	}
	usr, err := ResolveUser(o.Rootfs, c.User, hc.GroupAdd)
	if err != nil {
		return nil, err
	}
	usr.Umask = hc.Umask
	rlimits, err := rlimits(hc.Ulimits, h)
	if err != nil {
		return nil, err
	}
	p := &specs.Process{
		Terminal: c.Tty,
		User:     usr,
		Args:     args,
		Env:      env,
		Cwd:      path.Clean(cwd),
		Rlimits:  rlimits,
	}
	if c.Tty && hc.ConsoleSize[0] > 0 && hc.ConsoleSize[1] > 0 {
		p.ConsoleSize = &specs.Box{Height: hc.ConsoleSize[0], Width: hc.ConsoleSize[1]}
	}
	if hc.OomScoreAdj < -1000 || hc.OomScoreAdj > 1000 {
		return nil, errdefs.Invalidf("--oom-score-adj %d: must be between -1000 and 1000", hc.OomScoreAdj)
	}
	// Docker always sets the score; berth only sets a non-zero one, so that a
	// daemon started with a positive score does not need CAP_SYS_RESOURCE
	// to hand its containers 0.
	if hc.OomScoreAdj != 0 {
		score := hc.OomScoreAdj
		p.OOMScoreAdj = &score
	}
	return p, nil
}

// useInit reports whether --init applies: only a container with its own
// PID namespace needs an init, as Docker decides.
func useInit(hc *container.HostConfig) bool {
	return hc.Init != nil && *hc.Init && hc.PidMode == ""
}

// environment is Docker's container environment: PATH, HOSTNAME and (with
// a TTY) TERM, overridden by the config's Env. An entry without "=" unsets
// the variable, as the Docker daemon does (the CLI has already replaced a
// bare "-e NAME" with the client's value).
func environment(c *container.Config) ([]string, error) {
	env := []string{"PATH=" + DefaultPathEnv}
	if c.Hostname != "" {
		env = append(env, "HOSTNAME="+c.Hostname)
	}
	if c.Tty {
		env = append(env, "TERM=xterm")
	}
	for _, kv := range c.Env {
		name, _, hasValue := strings.Cut(kv, "=")
		if name == "" || strings.ContainsRune(kv, 0) {
			return nil, errdefs.Invalidf("--env %q: invalid environment variable", kv)
		}
		i := slices.IndexFunc(env, func(e string) bool { return strings.HasPrefix(e, name+"=") })
		switch {
		case !hasValue && i >= 0:
			env = slices.Delete(env, i, i+1)
		case !hasValue:
		case i >= 0:
			env[i] = kv
		default:
			env = append(env, kv)
		}
	}
	return env, nil
}

// setNamespaces adds Docker's namespaces: mount, network, uts, pid, ipc,
// and cgroup where that is the default (cgroup v2) or asked for.
func setNamespaces(s *specs.Spec, o Options, h host) error {
	hc := o.HostConfig
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}

	switch {
	case o.NetNSPath != "":
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: o.NetNSPath})
	case hc.NetworkMode.IsHost():
	case hc.NetworkMode.IsContainer():
		return errdefs.NotImplemented(fmt.Errorf("--network %s: joining another container's network needs a namespace path from the engine", hc.NetworkMode))
	default:
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}

	switch {
	case hc.UTSMode == "":
		ns = append(ns, specs.LinuxNamespace{Type: specs.UTSNamespace})
		if d := o.Config.Domainname; d != "" {
			// Docker sets the domain name with a sysctl rather than the
			// spec's domainname field, which older runtimes ignore.
			s.Linux.Sysctl["kernel.domainname"] = d
		}
	case hc.UTSMode.IsHost():
		s.Hostname = ""
	default:
		return errdefs.Invalidf("--uts %q: invalid UTS mode", hc.UTSMode)
	}

	switch {
	case hc.PidMode == "":
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	case hc.PidMode.IsHost():
	case hc.PidMode.IsContainer():
		return errdefs.NotImplemented(fmt.Errorf("--pid %s: joining another container's PID namespace is not supported yet", hc.PidMode))
	default:
		return errdefs.Invalidf("--pid %q: invalid PID mode", hc.PidMode)
	}

	switch m := hc.IpcMode; {
	case m == "" || m.IsPrivate() || m.IsShareable() || m.IsNone():
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace})
	case m.IsHost():
	case m.IsContainer():
		return errdefs.NotImplemented(fmt.Errorf("--ipc %s: joining another container's IPC namespace is not supported yet", m))
	default:
		return errdefs.Invalidf("--ipc %q: invalid IPC mode", m)
	}

	switch m := hc.CgroupnsMode; {
	case m.IsPrivate(), m.IsEmpty() && h.cgroup2:
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	case m.IsHost(), m.IsEmpty():
	default:
		return errdefs.Invalidf("--cgroupns %q: invalid cgroup namespace mode", m)
	}

	if hc.UsernsMode != "" && !hc.UsernsMode.IsHost() {
		return errdefs.NotImplemented(fmt.Errorf("--userns %q: user namespaces are not supported", hc.UsernsMode))
	}
	s.Linux.Namespaces = ns
	return nil
}

// setSysctls adds Docker's default network sysctls for a container with its
// own network namespace (ping and low ports without capabilities), then the
// user's --sysctl values, which win.
func setSysctls(s *specs.Spec, hc *container.HostConfig, h host) error {
	if slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace }) {
		for k, v := range map[string]string{
			"net.ipv4.ping_group_range":           "0 2147483647",
			"net.ipv4.ip_unprivileged_port_start": "0",
		} {
			if h.sysctlExists(k) {
				s.Linux.Sysctl[k] = v
			}
		}
	}
	for k, v := range hc.Sysctls {
		if k == "" || strings.ContainsAny(k, " /") {
			return errdefs.Invalidf("--sysctl %s=%s: invalid sysctl name", k, v)
		}
		s.Linux.Sysctl[k] = v
	}
	return nil
}

// Docker's default masked and read-only paths. The kernel may lack some
// (this one has no /proc/kcore); runtimes skip paths that do not exist.
var (
	defaultMaskedPaths = []string{
		"/proc/acpi",
		"/proc/asound",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/sys/devices/virtual/powercap",
		"/sys/firmware",
	}
	defaultReadonlyPaths = []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
)

// setPaths sets masked and read-only paths: Docker's defaults (plus each
// CPU's thermal_throttle directory, as Docker masks them), the host
// config's own lists when given, none for --privileged or
// systempaths=unconfined.
func setPaths(s *specs.Spec, hc *container.HostConfig, sec securityOpts, h host) {
	if hc.Privileged || sec.unconfinedPaths {
		return
	}
	s.Linux.MaskedPaths = append(slices.Clone(defaultMaskedPaths), h.thermalThrottle...)
	s.Linux.ReadonlyPaths = slices.Clone(defaultReadonlyPaths)
	if hc.MaskedPaths != nil {
		s.Linux.MaskedPaths = slices.Clone(hc.MaskedPaths)
	}
	if hc.ReadonlyPaths != nil {
		s.Linux.ReadonlyPaths = slices.Clone(hc.ReadonlyPaths)
	}
}
