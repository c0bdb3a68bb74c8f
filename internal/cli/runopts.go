package cli

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-connections/nat"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/internal/probe"
)

// runOptions are the flags of create and run, as Docker names them.
type runOptions struct {
	name, workdir, user, entrypoint, hostname string
	env, envFiles, labels, labelFiles         []string
	volumes, mounts, tmpfs                    []string
	readOnly, privileged, init                bool
	memory, memorySwap, memoryReservation     string
	cpus                                      string
	cpuShares, cpuQuota, cpuPeriod            int64
	cpusetCpus                                string
	pidsLimit                                 int64
	ulimits, capAdd, capDrop, securityOpt     []string
	stopSignal                                string
	stopTimeout                               int
	healthCmd                                 string
	healthInterval, healthTimeout             time.Duration
	healthStartPeriod, healthStartInterval    time.Duration
	healthRetries                             int
	noHealthcheck                             bool
	healthOnFailure                           string
	livenessProbe, readinessProbe, startProbe string
	restartDelay, restartMaxDelay             time.Duration
	restartResetAfter                         time.Duration
	restartFactor                             float64
	restart, runtime, shmSize                 string
	groupAdd, sysctls, logOpts                []string
	logDriver                                 string
	platform, pull                            string
	interactive, tty                          bool
	publish, expose                           []string
	publishAll                                bool
	networks, networkAliases                  []string
	ipv4, ipv6, macAddress                    string
	addHosts, dns, dnsSearch, dnsOptions      []string

	// run only
	detach, rm, sigProxy bool
	attach               []string
	detachKeys           string
}

func addCreateFlags(f *pflag.FlagSet, o *runOptions) {
	f.StringVar(&o.name, "name", "", "Assign a name to the container")
	f.StringArrayVarP(&o.env, "env", "e", nil, "Set environment variables (NAME=value, or NAME to pass this shell's value)")
	f.StringArrayVar(&o.envFiles, "env-file", nil, "Read in a file of environment variables")
	f.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	f.StringVarP(&o.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	f.StringVar(&o.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	// -h is --hostname, as with docker: help is --help only.
	f.Bool("help", false, "Print usage")
	f.StringVarP(&o.hostname, "hostname", "h", "", "Container host name")
	f.StringArrayVarP(&o.labels, "label", "l", nil, "Set meta data on a container")
	f.StringArrayVar(&o.labelFiles, "label-file", nil, "Read in a line delimited file of labels")
	f.StringArrayVarP(&o.volumes, "volume", "v", nil, "Bind mount a volume (SRC:DST[:ro|rw])")
	f.StringArrayVar(&o.mounts, "mount", nil, "Attach a filesystem mount to the container (type=bind|volume|tmpfs,...)")
	f.StringArrayVar(&o.tmpfs, "tmpfs", nil, "Mount a tmpfs directory (DST[:OPTIONS])")
	f.BoolVar(&o.readOnly, "read-only", false, "Mount the container's root filesystem as read only")
	f.StringVarP(&o.memory, "memory", "m", "", "Memory limit (e.g. 512m, 1g)")
	f.StringVar(&o.memorySwap, "memory-swap", "", "Swap limit equal to memory plus swap: -1 to enable unlimited swap")
	f.StringVar(&o.memoryReservation, "memory-reservation", "", "Memory soft limit")
	f.StringVar(&o.cpus, "cpus", "", "Number of CPUs (e.g. 1.5)")
	f.Int64VarP(&o.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	f.Int64Var(&o.cpuQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	f.Int64Var(&o.cpuPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	f.StringVar(&o.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	f.Int64Var(&o.pidsLimit, "pids-limit", 0, "Tune container pids limit (-1 for unlimited)")
	f.StringArrayVar(&o.ulimits, "ulimit", nil, "Ulimit options (NAME=SOFT[:HARD])")
	f.StringArrayVar(&o.capAdd, "cap-add", nil, "Add Linux capabilities")
	f.StringArrayVar(&o.capDrop, "cap-drop", nil, "Drop Linux capabilities")
	f.BoolVar(&o.privileged, "privileged", false, "Give extended privileges to this container")
	f.StringArrayVar(&o.securityOpt, "security-opt", nil, "Security options (seccomp=unconfined|PROFILE, apparmor=..., no-new-privileges)")
	f.BoolVar(&o.init, "init", false, "Run an init inside the container that forwards signals and reaps processes")
	f.StringVar(&o.stopSignal, "stop-signal", "", "Signal to stop the container")
	f.IntVar(&o.stopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	f.StringVar(&o.healthCmd, "health-cmd", "", "Command to run to check health")
	f.DurationVar(&o.healthInterval, "health-interval", 0, "Time between running the check (ms|s|m|h) (default 0s)")
	f.DurationVar(&o.healthTimeout, "health-timeout", 0, "Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
	f.DurationVar(&o.healthStartPeriod, "health-start-period", 0, "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)")
	f.DurationVar(&o.healthStartInterval, "health-start-interval", 0, "Time between running the check during the start period (ms|s|m|h) (default 0s)")
	f.IntVar(&o.healthRetries, "health-retries", 0, "Consecutive failures needed to report unhealthy")
	f.BoolVar(&o.noHealthcheck, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")
	f.StringVar(&o.healthOnFailure, "health-on-failure", "", "Action when the container turns unhealthy: none, restart, stop or kill (sets the label berth.health.on-failure)")
	f.StringVar(&o.livenessProbe, "liveness-probe", "", "Liveness probe replacing the health check, e.g. http=8080/healthz,interval=5s (sets the label berth.probe.liveness)")
	f.StringVar(&o.readinessProbe, "readiness-probe", "", "Readiness probe, e.g. tcp=5432,retries=2 or cmd=test -f /ready (sets the label berth.probe.readiness)")
	f.StringVar(&o.startProbe, "startup-probe", "", "Startup probe: the other probes wait until it passes; failing it kills the container (sets the label berth.probe.startup)")
	f.DurationVar(&o.restartDelay, "restart-delay", 0, "First restart back-off (default 100ms; sets the label berth.restart.delay)")
	f.DurationVar(&o.restartMaxDelay, "restart-max-delay", 0, "Longest restart back-off (default 1m; sets the label berth.restart.max-delay)")
	f.Float64Var(&o.restartFactor, "restart-factor", 0, "Growth of the restart back-off per restart (default 2; sets the label berth.restart.factor)")
	f.DurationVar(&o.restartResetAfter, "restart-reset-after", 0, "A run this long resets the restart back-off (default 10s; sets the label berth.restart.reset-after)")
	// --net, --net-alias and --dns-opt are docker's old names: hidden
	// aliases sharing their flag's value.
	f.StringArrayVar(&o.networks, "network", nil, "Connect a container to a network")
	f.Var(f.Lookup("network").Value, "net", "Connect a container to a network")
	f.MarkHidden("net")
	f.StringArrayVar(&o.networkAliases, "network-alias", nil, "Add network-scoped alias for the container")
	f.Var(f.Lookup("network-alias").Value, "net-alias", "Add network-scoped alias for the container")
	f.MarkHidden("net-alias")
	f.StringVar(&o.ipv4, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	f.StringVar(&o.ipv6, "ip6", "", "IPv6 address (e.g., 2001:db8::33)")
	f.StringVar(&o.macAddress, "mac-address", "", "Container MAC address (e.g., 92:d0:c6:0a:29:33)")
	f.StringArrayVar(&o.addHosts, "add-host", nil, "Add a custom host-to-IP mapping (host:ip)")
	f.StringArrayVar(&o.dns, "dns", nil, "Set custom DNS servers")
	f.StringArrayVar(&o.dnsOptions, "dns-option", nil, "Set DNS options")
	f.Var(f.Lookup("dns-option").Value, "dns-opt", "Set DNS options")
	f.MarkHidden("dns-opt")
	f.StringArrayVar(&o.dnsSearch, "dns-search", nil, "Set custom DNS search domains")
	f.StringArrayVar(&o.expose, "expose", nil, "Expose a port or a range of ports")
	f.StringVar(&o.restart, "restart", "", "Restart policy to apply when a container exits (no, always, on-failure[:N], unless-stopped)")
	f.StringVar(&o.runtime, "runtime", "", "Runtime to use for this container")
	f.StringVar(&o.shmSize, "shm-size", "", "Size of /dev/shm")
	f.StringArrayVar(&o.groupAdd, "group-add", nil, "Add additional groups to join")
	f.StringArrayVar(&o.sysctls, "sysctl", nil, "Sysctl options (NAME=VALUE)")
	f.StringVar(&o.logDriver, "log-driver", "", "Logging driver for the container")
	f.StringArrayVar(&o.logOpts, "log-opt", nil, "Log driver options")
	f.StringVar(&o.platform, "platform", "", "Set platform if server is multi-platform capable")
	f.StringVar(&o.pull, "pull", "missing", `Pull image before creating ("always", "missing", "never")`)
	f.BoolVarP(&o.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	f.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	f.StringArrayVarP(&o.publish, "publish", "p", nil, "Publish a container's port(s) to the host")
	f.BoolVarP(&o.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	f.SetInterspersed(false) // flags after the image belong to the command
}

// createRequest is what ContainerCreate takes besides the name and
// platform.
type createRequest struct {
	config     *container.Config
	hostConfig *container.HostConfig
	networking *network.NetworkingConfig // nil: the daemon's defaults
}

// containerConfig turns the flags, the image and the command into the
// create request. Every error is a usage error (exit 125), one line.
func (o *runOptions) containerConfig(image string, cmd []string) (createRequest, error) {
	cfg, hc, err := o.build(image, cmd)
	if err != nil {
		return createRequest{}, usageError{err}
	}
	nc, err := o.networking(cfg, hc)
	if err != nil {
		return createRequest{}, usageError{err}
	}
	return createRequest{cfg, hc, nc}, nil
}

func (o *runOptions) build(image string, cmd []string) (*container.Config, *container.HostConfig, error) {
	switch o.pull {
	case "missing", "always", "never":
	default:
		return nil, nil, fmt.Errorf("--pull %q: want missing, always or never", o.pull)
	}
	cfg := &container.Config{
		Image:      image,
		Cmd:        cmd,
		Hostname:   o.hostname,
		User:       o.user,
		WorkingDir: o.workdir,
		Tty:        o.tty,
		OpenStdin:  o.interactive,
		StdinOnce:  o.interactive,
		StopSignal: o.stopSignal,
	}
	if o.workdir != "" && !filepath.IsAbs(o.workdir) {
		return nil, nil, fmt.Errorf("--workdir %q: the working directory must be an absolute path", o.workdir)
	}
	if o.entrypoint != "" {
		cfg.Entrypoint = []string{o.entrypoint}
	}
	if o.stopTimeout != 0 {
		t := o.stopTimeout
		cfg.StopTimeout = &t
	}
	if hc, err := o.healthConfig(); err != nil {
		return nil, nil, err
	} else if hc != nil {
		cfg.Healthcheck = hc
	}
	env, err := readKVFiles(o.envFiles, "--env-file")
	if err != nil {
		return nil, nil, err
	}
	for _, e := range append(env, o.env...) {
		if e == "" || strings.HasPrefix(e, "=") {
			return nil, nil, fmt.Errorf("--env %q: want NAME=value or NAME", e)
		}
		if !strings.Contains(e, "=") {
			// As docker: a bare NAME takes this shell's value, if set.
			if v, ok := os.LookupEnv(e); ok {
				e += "=" + v
			} else {
				continue
			}
		}
		cfg.Env = append(cfg.Env, e)
	}
	labels, err := readKVFiles(o.labelFiles, "--label-file")
	if err != nil {
		return nil, nil, err
	}
	for _, l := range append(labels, o.labels...) {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return nil, nil, fmt.Errorf("--label %q: want KEY=VALUE", l)
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		cfg.Labels[k] = v
	}
	if o.healthOnFailure != "" {
		switch o.healthOnFailure {
		case "none", "restart", "stop", "kill":
		default:
			return nil, nil, fmt.Errorf("--health-on-failure %q: want none, restart, stop or kill", o.healthOnFailure)
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		cfg.Labels["berth.health.on-failure"] = o.healthOnFailure
	}
	if err := o.supervisionLabels(cfg); err != nil {
		return nil, nil, err
	}

	hc := &container.HostConfig{
		ReadonlyRootfs: o.readOnly,
		Privileged:     o.privileged,
		CapAdd:         o.capAdd,
		CapDrop:        o.capDrop,
		SecurityOpt:    o.securityOpt,
		GroupAdd:       o.groupAdd,
		Runtime:        o.runtime,
		LogConfig:      container.LogConfig{Type: o.logDriver},
	}
	if o.init {
		t := true
		hc.Init = &t
	}
	for _, s := range o.securityOpt {
		k, _, _ := strings.Cut(s, "=")
		if strings.Contains(s, ":") && !strings.Contains(s, "=") {
			k, _, _ = strings.Cut(s, ":")
		}
		switch k {
		case "seccomp", "apparmor", "label", "no-new-privileges", "systempaths", "mask", "unmask":
		default:
			return nil, nil, fmt.Errorf("--security-opt %q: unknown option %q (want seccomp=, apparmor=, label=, no-new-privileges)", s, k)
		}
	}
	for _, v := range o.volumes {
		if err := checkBind(v); err != nil {
			return nil, nil, err
		}
		hc.Binds = append(hc.Binds, v)
	}
	for _, m := range o.mounts {
		mnt, err := parseMount(m)
		if err != nil {
			return nil, nil, err
		}
		hc.Mounts = append(hc.Mounts, mnt)
	}
	for _, t := range o.tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		if !filepath.IsAbs(dst) {
			return nil, nil, fmt.Errorf("--tmpfs %q: the destination must be an absolute path", t)
		}
		if hc.Tmpfs == nil {
			hc.Tmpfs = map[string]string{}
		}
		hc.Tmpfs[dst] = opts
	}
	if hc.RestartPolicy, err = parseRestart(o.restart); err != nil {
		return nil, nil, err
	}
	if o.rm && hc.RestartPolicy.Name != "" && hc.RestartPolicy.Name != container.RestartPolicyDisabled {
		return nil, nil, fmt.Errorf("conflicting options: cannot specify both --restart and --rm")
	}
	hc.AutoRemove = o.rm
	if hc.Memory, err = parseBytes("--memory", o.memory); err != nil {
		return nil, nil, err
	}
	if o.memorySwap == "-1" {
		hc.MemorySwap = -1
	} else if hc.MemorySwap, err = parseBytes("--memory-swap", o.memorySwap); err != nil {
		return nil, nil, err
	}
	if hc.MemorySwap > 0 && hc.Memory > 0 && hc.MemorySwap < hc.Memory {
		return nil, nil, fmt.Errorf("--memory-swap %s: must be at least --memory %s", o.memorySwap, o.memory)
	}
	if hc.MemorySwap != 0 && hc.Memory == 0 {
		return nil, nil, fmt.Errorf("--memory-swap needs --memory")
	}
	if hc.MemoryReservation, err = parseBytes("--memory-reservation", o.memoryReservation); err != nil {
		return nil, nil, err
	}
	if hc.ShmSize, err = parseBytes("--shm-size", o.shmSize); err != nil {
		return nil, nil, err
	}
	if o.cpus != "" {
		f, err := strconv.ParseFloat(o.cpus, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, nil, fmt.Errorf("--cpus %q: want a non-negative number such as 1.5", o.cpus)
		}
		if o.cpuQuota != 0 || o.cpuPeriod != 0 {
			return nil, nil, fmt.Errorf("conflicting options: --cpus and --cpu-quota/--cpu-period")
		}
		hc.NanoCPUs = int64(f * 1e9)
	}
	hc.CPUShares, hc.CPUQuota, hc.CPUPeriod, hc.CpusetCpus = o.cpuShares, o.cpuQuota, o.cpuPeriod, o.cpusetCpus
	if o.pidsLimit != 0 {
		p := o.pidsLimit
		hc.PidsLimit = &p
	}
	for _, u := range o.ulimits {
		ul, err := units.ParseUlimit(u)
		if err != nil {
			return nil, nil, fmt.Errorf("--ulimit %q: %v", u, err)
		}
		hc.Ulimits = append(hc.Ulimits, ul)
	}
	for _, s := range o.sysctls {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, nil, fmt.Errorf("--sysctl %q: want NAME=VALUE", s)
		}
		if hc.Sysctls == nil {
			hc.Sysctls = map[string]string{}
		}
		hc.Sysctls[k] = v
	}
	for _, s := range o.logOpts {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, nil, fmt.Errorf("--log-opt %q: want KEY=VALUE", s)
		}
		if hc.LogConfig.Config == nil {
			hc.LogConfig.Config = map[string]string{}
		}
		hc.LogConfig.Config[k] = v
	}
	return cfg, hc, nil
}

// parseBytes reads Docker's sizes: "512m", "1g", "1024" (bytes).
func parseBytes(flag, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := units.RAMInBytes(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q: want a size such as 512m or 1g", flag, s)
	}
	return n, nil
}

func parseRestart(s string) (container.RestartPolicy, error) {
	if s == "" {
		return container.RestartPolicy{}, nil
	}
	name, count, hasCount := strings.Cut(s, ":")
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	switch p.Name {
	case container.RestartPolicyDisabled, container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		if hasCount {
			return p, fmt.Errorf("--restart %q: a maximum retry count is only allowed with on-failure", s)
		}
	case container.RestartPolicyOnFailure:
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				return p, fmt.Errorf("--restart %q: the maximum retry count must be a non-negative number", s)
			}
			p.MaximumRetryCount = n
		}
	default:
		return p, fmt.Errorf("--restart %q: want no, always, on-failure[:N] or unless-stopped", s)
	}
	return p, nil
}

// checkBind validates -v SRC:DST[:OPTS] (or an anonymous volume DST).
func checkBind(v string) error {
	parts := strings.Split(v, ":")
	switch len(parts) {
	case 1:
		if !filepath.IsAbs(parts[0]) {
			return fmt.Errorf("--volume %q: the destination must be an absolute path", v)
		}
	case 2, 3:
		if parts[0] == "" {
			return fmt.Errorf("--volume %q: empty source", v)
		}
		if !filepath.IsAbs(parts[1]) {
			return fmt.Errorf("--volume %q: the destination must be an absolute path", v)
		}
		if len(parts) == 3 {
			for _, o := range strings.Split(parts[2], ",") {
				switch o {
				case "ro", "rw", "z", "Z", "nocopy", "private", "rprivate", "shared", "rshared", "slave", "rslave":
				default:
					return fmt.Errorf("--volume %q: unknown option %q", v, o)
				}
			}
		}
	default:
		return fmt.Errorf("--volume %q: want SRC:DST[:OPTIONS]", v)
	}
	return nil
}

// parseMount reads --mount type=bind,source=/a,target=/b,readonly as Docker
// does (CSV fields).
func parseMount(s string) (mount.Mount, error) {
	r := csv.NewReader(strings.NewReader(s))
	fields, err := r.Read()
	if err != nil {
		return mount.Mount{}, fmt.Errorf("--mount %q: %v", s, err)
	}
	m := mount.Mount{Type: mount.TypeVolume}
	for _, f := range fields {
		k, v, hasV := strings.Cut(f, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		switch k {
		case "type":
			m.Type = mount.Type(v)
		case "source", "src":
			m.Source = v
		case "target", "destination", "dst":
			m.Target = v
		case "readonly", "ro":
			m.ReadOnly = true
			if hasV {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return m, fmt.Errorf("--mount %q: readonly=%q is not a boolean", s, v)
				}
				m.ReadOnly = b
			}
		case "bind-propagation":
			if m.BindOptions == nil {
				m.BindOptions = &mount.BindOptions{}
			}
			m.BindOptions.Propagation = mount.Propagation(v)
		case "volume-nocopy":
			if m.VolumeOptions == nil {
				m.VolumeOptions = &mount.VolumeOptions{}
			}
			m.VolumeOptions.NoCopy = true
		case "tmpfs-size":
			n, err := units.RAMInBytes(v)
			if err != nil {
				return m, fmt.Errorf("--mount %q: tmpfs-size %q: %v", s, v, err)
			}
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.SizeBytes = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return m, fmt.Errorf("--mount %q: tmpfs-mode %q: want an octal mode", s, v)
			}
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.Mode = os.FileMode(n)
		default:
			return m, fmt.Errorf("--mount %q: unknown field %q", s, k)
		}
	}
	switch m.Type {
	case mount.TypeBind, mount.TypeVolume, mount.TypeTmpfs:
	default:
		return m, fmt.Errorf("--mount %q: type %q: want bind, volume or tmpfs", s, m.Type)
	}
	if m.Target == "" {
		return m, fmt.Errorf("--mount %q: target is required", s)
	}
	if m.Type == mount.TypeBind && m.Source == "" {
		return m, fmt.Errorf("--mount %q: a bind mount needs a source", s)
	}
	if m.Type == mount.TypeTmpfs && m.Source != "" {
		return m, fmt.Errorf("--mount %q: a tmpfs mount takes no source", s)
	}
	return m, nil
}

// readKVFiles reads Docker's env and label files: one NAME=value a line,
// # comments and blank lines skipped.
func readKVFiles(paths []string, flag string) ([]string, error) {
	var out []string
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", flag, err)
		}
		sc := bufio.NewScanner(f)
		n := 0
		for sc.Scan() {
			n++
			l := strings.TrimLeft(sc.Text(), " \t")
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			if strings.HasPrefix(l, "=") {
				f.Close()
				return nil, fmt.Errorf("%s %s:%d: variable name missing in %q", flag, p, n, l)
			}
			out = append(out, l)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s %s: %v", flag, p, err)
		}
	}
	return out, nil
}

// parseTimeArg reads --since/--until: RFC 3339, a Unix time, or a
// duration before now ("10m").
func parseTimeArg(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return strconv.FormatInt(time.Now().Add(-d).Unix(), 10), nil
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return strconv.FormatInt(t.Unix(), 10), nil
		}
	}
	return "", fmt.Errorf("%q: want a duration (10m), RFC 3339 time or Unix timestamp", s)
}

// networking fills the network part of the create request as docker run
// does: published and exposed ports, extra hosts and DNS go into cfg and
// hc; the first --network is the network mode, and --network-alias, --ip,
// --ip6 and --mac-address configure the container's endpoint on it
// ("default" when no --network is given, which the daemon resolves); every
// further --network adds an endpoint. It returns the endpoints, nil when
// there are none to configure.
func (o *runOptions) networking(cfg *container.Config, hc *container.HostConfig) (*network.NetworkingConfig, error) {
	var err error
	if cfg.ExposedPorts, hc.PortBindings, err = parsePublish(o.publish); err != nil {
		return nil, err
	}
	for _, e := range o.expose {
		pr, err := network.ParsePortRange(e)
		if err != nil {
			return nil, fmt.Errorf("--expose %q: invalid range format: %v", e, err)
		}
		for p := range pr.All() {
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = network.PortSet{}
			}
			cfg.ExposedPorts[p] = struct{}{}
		}
	}
	hc.PublishAllPorts = o.publishAll
	for _, h := range o.addHosts {
		v, err := parseExtraHost(h)
		if err != nil {
			return nil, err
		}
		hc.ExtraHosts = append(hc.ExtraHosts, v)
	}
	// Never nil, as with docker: an empty list and no list mean the same,
	// and containers docker creates always have one.
	hc.DNS, hc.DNSSearch, hc.DNSOptions = []netip.Addr{}, []string{}, []string{}
	for _, s := range o.dns {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("--dns %q: IP address is not correctly formatted", s)
		}
		hc.DNS = append(hc.DNS, a)
	}
	for _, s := range o.dnsSearch {
		d, err := parseDNSSearch(s)
		if err != nil {
			return nil, err
		}
		hc.DNSSearch = append(hc.DNSSearch, d)
	}
	hc.DNSOptions = append(hc.DNSOptions, o.dnsOptions...)

	ep := &network.EndpointSettings{}
	if len(o.networkAliases) > 0 {
		ep.Aliases = append([]string(nil), o.networkAliases...)
	}
	var ipam network.EndpointIPAMConfig
	if o.ipv4 != "" {
		if ipam.IPv4Address, err = netip.ParseAddr(o.ipv4); err != nil || !ipam.IPv4Address.Is4() {
			return nil, fmt.Errorf("--ip %q: want an IPv4 address (e.g., 172.30.100.104)", o.ipv4)
		}
	}
	if o.ipv6 != "" {
		if ipam.IPv6Address, err = netip.ParseAddr(o.ipv6); err != nil || !ipam.IPv6Address.Is6() || ipam.IPv6Address.Is4In6() {
			return nil, fmt.Errorf("--ip6 %q: want an IPv6 address (e.g., 2001:db8::33)", o.ipv6)
		}
	}
	if ipam.IPv4Address.IsValid() || ipam.IPv6Address.IsValid() {
		ep.IPAMConfig = &ipam
	}
	if o.macAddress != "" {
		mac, err := net.ParseMAC(strings.TrimSpace(o.macAddress))
		if err != nil {
			return nil, fmt.Errorf("--mac-address %q: not a valid mac address", o.macAddress)
		}
		ep.MacAddress = network.HardwareAddr(mac)
	}

	first := network.NetworkDefault
	if len(o.networks) > 0 {
		first = o.networks[0]
		// "default" is what no --network means: leave the mode to the daemon.
		if first != network.NetworkDefault {
			hc.NetworkMode = container.NetworkMode(first)
		}
	}
	if len(ep.Aliases) > 0 && !container.NetworkMode(first).IsUserDefined() {
		return nil, errors.New("--network-alias: network-scoped aliases are only supported for user-defined networks")
	}
	endpoints := map[string]*network.EndpointSettings{}
	if ep.Aliases != nil || ep.IPAMConfig != nil || ep.MacAddress != nil {
		endpoints[first] = ep
	}
	var userDefined, builtin bool
	seen := map[string]bool{}
	for i, n := range o.networks {
		if strings.TrimSpace(n) == "" {
			return nil, errors.New("--network: no name set for network")
		}
		if seen[n] {
			return nil, fmt.Errorf("--network: network %q is specified multiple times", n)
		}
		seen[n] = true
		if container.NetworkMode(n).IsUserDefined() {
			userDefined = true
		} else {
			builtin = true
		}
		if i > 0 {
			endpoints[n] = &network.EndpointSettings{}
		}
	}
	if userDefined && builtin {
		return nil, errors.New("conflicting options: cannot attach both user-defined and non-user-defined network-modes")
	}
	if len(endpoints) == 0 {
		return nil, nil
	}
	return &network.NetworkingConfig{EndpointsConfig: endpoints}, nil
}

// parsePublish reads -p/--publish as docker does: [ip:][hostPort:]containerPort[/proto]
// with ranges on either side (8000-8001:80-81, or 8000-8010:80 for any free
// port of the range), or the long form published=8080,target=80[,protocol=udp].
// Every published port is exposed too.
func parsePublish(specs []string) (network.PortSet, network.PortMap, error) {
	if len(specs) == 0 {
		return nil, nil, nil
	}
	exposed, bindings := network.PortSet{}, network.PortMap{}
	for _, s := range specs {
		spec := s
		if strings.Contains(s, "=") {
			params := map[string]string{"protocol": "tcp"}
			for _, kv := range strings.Split(s, ",") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return nil, nil, fmt.Errorf("--publish %q: invalid publish opts format (should be name=value but got '%s')", s, kv)
				}
				params[k] = v
			}
			spec = params["published"] + ":" + params["target"] + "/" + params["protocol"]
		}
		mappings, err := nat.ParsePortSpec(spec)
		if err != nil {
			return nil, nil, fmt.Errorf("--publish %q: %v", s, err)
		}
		for _, m := range mappings {
			p, err := network.ParsePort(string(m.Port))
			if err != nil {
				return nil, nil, fmt.Errorf("--publish %q: %v", s, err)
			}
			b := network.PortBinding{HostPort: m.Binding.HostPort}
			if m.Binding.HostIP != "" {
				if b.HostIP, err = netip.ParseAddr(m.Binding.HostIP); err != nil {
					return nil, nil, fmt.Errorf("--publish %q: invalid IP address: %s", s, m.Binding.HostIP)
				}
			}
			exposed[p] = struct{}{}
			bindings[p] = append(bindings[p], b)
		}
	}
	return exposed, bindings, nil
}

// parseExtraHost checks --add-host NAME:IP (or NAME=IP, the address
// possibly in brackets) as docker does, and returns the NAME:IP form the
// API takes. The address "host-gateway" is kept: the daemon replaces it
// with the host's address.
func parseExtraHost(s string) (string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		// Split at the first colon only: the address may be IPv6.
		k, v, ok = strings.Cut(s, ":")
	}
	if !ok || k == "" || strings.Contains(k, ":") {
		return "", fmt.Errorf("bad format for add-host: %q", s)
	}
	if v != "host-gateway" {
		if len(v) > 2 && v[0] == '[' && v[len(v)-1] == ']' {
			v = v[1 : len(v)-1]
		}
		if _, err := netip.ParseAddr(strings.TrimSpace(v)); err != nil {
			return "", fmt.Errorf("invalid IP address in add-host: %q", v)
		}
	}
	return k + ":" + v, nil
}

// dnsSearchDomain is a domain name: dot-separated labels of letters,
// digits and inner hyphens, with an optional final dot.
var dnsSearchDomain = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*)\.?\s*$`)

// parseDNSSearch checks a --dns-search domain as docker does: "." (no
// search domains), or a domain name with at least one letter.
func parseDNSSearch(s string) (string, error) {
	v := strings.Trim(s, " ")
	if v == "." {
		return v, nil
	}
	m := dnsSearchDomain.FindStringSubmatch(v)
	if !strings.ContainsAny(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") || m == nil || len(m[1]) >= 255 {
		return "", fmt.Errorf("--dns-search %q: not a valid domain", s)
	}
	return m[1], nil
}

// healthConfig is docker's: --no-healthcheck excludes the other health
// flags; the durations and retries must not be negative.
func (o *runOptions) healthConfig() (*container.HealthConfig, error) {
	set := o.healthCmd != "" || o.healthInterval != 0 || o.healthTimeout != 0 || o.healthStartPeriod != 0 || o.healthStartInterval != 0 || o.healthRetries != 0
	if o.noHealthcheck {
		if set {
			return nil, fmt.Errorf("--no-healthcheck conflicts with --health-* options")
		}
		return &container.HealthConfig{Test: []string{"NONE"}}, nil
	}
	if !set {
		return nil, nil
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"interval", o.healthInterval}, {"timeout", o.healthTimeout}, {"start-period", o.healthStartPeriod}, {"start-interval", o.healthStartInterval}} {
		if d.v < 0 {
			return nil, fmt.Errorf("--health-%s cannot be negative", d.name)
		}
	}
	if o.healthRetries < 0 {
		return nil, fmt.Errorf("--health-retries cannot be negative")
	}
	hc := &container.HealthConfig{Interval: o.healthInterval, Timeout: o.healthTimeout, StartPeriod: o.healthStartPeriod, StartInterval: o.healthStartInterval, Retries: o.healthRetries}
	if o.healthCmd != "" {
		hc.Test = []string{"CMD-SHELL", o.healthCmd}
	}
	return hc, nil
}

// supervisionLabels turns the probe and back-off flags into the labels
// the daemon reads (so they travel through Docker's API unchanged). The
// values are checked here too, for an error that names the flag.
func (o *runOptions) supervisionLabels(cfg *container.Config) error {
	set := func(k, v string) {
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		cfg.Labels[k] = v
	}
	for _, p := range []struct{ flag, label, v string }{
		{"liveness-probe", "berth.probe.liveness", o.livenessProbe},
		{"readiness-probe", "berth.probe.readiness", o.readinessProbe},
		{"startup-probe", "berth.probe.startup", o.startProbe},
	} {
		if p.v == "" {
			continue
		}
		if _, err := probe.Parse(p.v); err != nil {
			return fmt.Errorf("--%s: %w", p.flag, err)
		}
		set(p.label, p.v)
	}
	for _, d := range []struct {
		flag, label string
		v           time.Duration
	}{
		{"restart-delay", "berth.restart.delay", o.restartDelay},
		{"restart-max-delay", "berth.restart.max-delay", o.restartMaxDelay},
		{"restart-reset-after", "berth.restart.reset-after", o.restartResetAfter},
	} {
		switch {
		case d.v < 0:
			return fmt.Errorf("--%s: cannot be negative", d.flag)
		case d.v > 0:
			set(d.label, d.v.String())
		}
	}
	if o.restartFactor != 0 {
		if !(o.restartFactor >= 1 && o.restartFactor <= 100) { // NaN too
			return fmt.Errorf("--restart-factor %g: want a number from 1 to 100", o.restartFactor)
		}
		set("berth.restart.factor", strconv.FormatFloat(o.restartFactor, 'g', -1, 64))
	}
	return nil
}
