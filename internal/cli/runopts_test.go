package cli

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/pflag"
)

// parseRun parses create flags as `berth run` would and builds the request.
func parseRun(t *testing.T, args ...string) (*container.Config, *container.HostConfig, error) {
	t.Helper()
	req, err := parseRunRequest(t, args...)
	return req.config, req.hostConfig, err
}

func parseRunRequest(t *testing.T, args ...string) (createRequest, error) {
	t.Helper()
	o := &runOptions{}
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	addCreateFlags(fs, o)
	fs.BoolVar(&o.rm, "rm", false, "")
	if err := fs.Parse(args); err != nil {
		return createRequest{}, err
	}
	rest := fs.Args()
	return o.containerConfig(rest[0], rest[1:])
}

func TestRunFlags(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	os.WriteFile(envFile, []byte("# comment\nA=1\n\nB=two words\n"), 0o644)
	t.Setenv("FROM_SHELL", "yes")
	pids := int64(64)
	tests := []struct {
		args  []string
		check func(*container.Config, *container.HostConfig) any
		want  any
	}{
		{[]string{"-e", "X=1", "-e", "FROM_SHELL", "-e", "UNSET_VAR_XYZ", "img"}, func(c *container.Config, _ *container.HostConfig) any { return c.Env }, []string{"X=1", "FROM_SHELL=yes"}},
		{[]string{"--env-file", envFile, "-e", "C=3", "img"}, func(c *container.Config, _ *container.HostConfig) any { return c.Env }, []string{"A=1", "B=two words", "C=3"}},
		{[]string{"-v", "/srv:/data:ro", "img"}, func(_ *container.Config, h *container.HostConfig) any { return h.Binds }, []string{"/srv:/data:ro"}},
		{[]string{"--mount", "type=bind,source=/a,target=/b,readonly", "img"}, func(_ *container.Config, h *container.HostConfig) any { return h.Mounts },
			[]mount.Mount{{Type: mount.TypeBind, Source: "/a", Target: "/b", ReadOnly: true}}},
		{[]string{"--mount", "type=tmpfs,dst=/t,tmpfs-size=64m", "img"}, func(_ *container.Config, h *container.HostConfig) any { return h.Mounts },
			[]mount.Mount{{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 64 << 20}}}},
		{[]string{"--tmpfs", "/run:size=1m", "img"}, func(_ *container.Config, h *container.HostConfig) any { return h.Tmpfs }, map[string]string{"/run": "size=1m"}},
		{[]string{"--ulimit", "nofile=1024:2048", "img"}, func(_ *container.Config, h *container.HostConfig) any {
			return []int64{h.Ulimits[0].Soft, h.Ulimits[0].Hard}
		}, []int64{1024, 2048}},
		{[]string{"--cpus", "1.5", "img"}, func(_ *container.Config, h *container.HostConfig) any { return h.NanoCPUs }, int64(1_500_000_000)},
		{[]string{"-m", "512m", "--memory-swap", "1g", "img"}, func(_ *container.Config, h *container.HostConfig) any { return []int64{h.Memory, h.MemorySwap} }, []int64{512 << 20, 1 << 30}},
		{[]string{"-m", "1g", "--memory-swap", "-1", "img"}, func(_ *container.Config, h *container.HostConfig) any { return h.MemorySwap }, int64(-1)},
		{[]string{"--restart", "on-failure:3", "img"}, func(_ *container.Config, h *container.HostConfig) any { return h.RestartPolicy },
			container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 3}},
		{[]string{"--security-opt", "no-new-privileges", "--security-opt", "seccomp=unconfined", "img"}, func(_ *container.Config, h *container.HostConfig) any { return h.SecurityOpt },
			[]string{"no-new-privileges", "seccomp=unconfined"}},
		{[]string{"--pids-limit", "64", "--network", "none", "img"}, func(_ *container.Config, h *container.HostConfig) any {
			return []any{*h.PidsLimit, string(h.NetworkMode)}
		}, []any{pids, "none"}},
		{[]string{"-it", "--entrypoint", "/bin/sh", "-w", "/tmp", "img", "-c", "echo hi"}, func(c *container.Config, _ *container.HostConfig) any {
			return []any{c.Tty, c.OpenStdin, c.Entrypoint, c.WorkingDir, c.Cmd}
		}, []any{true, true, []string{"/bin/sh"}, "/tmp", []string{"-c", "echo hi"}}},
		{[]string{"-l", "a=b", "--sysctl", "net.ipv4.ip_forward=1", "img"}, func(c *container.Config, h *container.HostConfig) any { return []any{c.Labels, h.Sysctls} },
			[]any{map[string]string{"a": "b"}, map[string]string{"net.ipv4.ip_forward": "1"}}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cfg, hc, err := parseRun(t, tt.args...)
			if err != nil {
				t.Fatalf("parse %q: %v", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, tt.check(cfg, hc)); diff != "" {
				t.Errorf("parse %q: (-want +got)\n%s", tt.args, diff)
			}
		})
	}
}

func TestRunFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		mention string
	}{
		{[]string{"-e", "=x", "img"}, "--env"},
		{[]string{"--env-file", "/nonexistent/env", "img"}, "--env-file"},
		{[]string{"-v", "relative:/x", "img"}, ""},
		{[]string{"-v", "/a:data", "img"}, "absolute"},
		{[]string{"-v", "/a:/b:bogus", "img"}, `unknown option "bogus"`},
		{[]string{"--mount", "type=nfs,target=/x", "img"}, "type"},
		{[]string{"--mount", "type=bind,target=/x", "img"}, "source"},
		{[]string{"--ulimit", "nofile=x", "img"}, "--ulimit"},
		{[]string{"--cpus", "many", "img"}, "--cpus"},
		{[]string{"-m", "12zz", "img"}, "--memory"},
		{[]string{"-m", "1g", "--memory-swap", "512m", "img"}, "at least"},
		{[]string{"--restart", "always:3", "img"}, "retry count"},
		{[]string{"--restart", "on-failure:-1", "img"}, "non-negative"},
		{[]string{"--rm", "--restart", "always", "img"}, "--restart and --rm"},
		{[]string{"--security-opt", "bogus=1", "img"}, "unknown option"},
		{[]string{"--tmpfs", "rel", "img"}, "absolute"},
		{[]string{"-p", "8080:x", "img"}, "invalid containerPort: x"},
		{[]string{"--network-alias", "db", "img"}, "only supported for user-defined networks"},
		{[]string{"--network", "bridge", "--network", "app", "img"}, "conflicting options"},
		{[]string{"--network", "app", "--network", "app", "img"}, "specified multiple times"},
		{[]string{"--ip", "10.0.0.300", "--network", "app", "img"}, "--ip"},
		{[]string{"--ip", "2001:db8::1", "--network", "app", "img"}, "--ip"},
		{[]string{"--ip6", "10.0.0.3", "--network", "app", "img"}, "--ip6"},
		{[]string{"--mac-address", "92:d0", "img"}, "--mac-address"},
		{[]string{"--add-host", "db", "img"}, "bad format for add-host"},
		{[]string{"--add-host", "db:not-an-ip", "img"}, "invalid IP address in add-host"},
		{[]string{"--dns", "8.8.8", "img"}, "--dns"},
		{[]string{"--dns-search", "-bad-", "img"}, "--dns-search"},
		{[]string{"--dns-search", "123", "img"}, "--dns-search"},
		{[]string{"--expose", "80-70", "img"}, "--expose"},
		{[]string{"--expose", "http", "img"}, "--expose"},
		{[]string{"--pull", "sometimes", "img"}, "--pull"},
	} {
		_, _, err := parseRun(t, tt.args...)
		if tt.mention == "" {
			// "relative:/x" is a named volume: valid.
			if err != nil {
				t.Errorf("parse %q: %v, want success", tt.args, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("parse %q succeeded, want an error mentioning %q", tt.args, tt.mention)
			continue
		}
		var ue usageError
		if !asUsage(err, &ue) {
			t.Errorf("parse %q: %v is not a usage error (exit 125)", tt.args, err)
		}
		if !strings.Contains(err.Error(), tt.mention) || strings.Contains(err.Error(), "\n") {
			t.Errorf("parse %q: error %q, want one line mentioning %q", tt.args, err, tt.mention)
		}
	}
}

func asUsage(err error, ue *usageError) bool {
	u, ok := err.(usageError)
	*ue = u
	return ok
}

func TestStartErrorCodes(t *testing.T) {
	for msg, want := range map[string]int{
		`exec: "nosuch": executable file not found in $PATH`: 127,
		`exec /etc/passwd: permission denied`:                126,
		`cgroup setup failed`:                                125,
	} {
		var ee exitError
		if err := startError(errorString(msg)); !asExit(err, &ee) || ee.code != want {
			t.Errorf("startError(%q) = %v, want exit %d", msg, err, want)
		}
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func asExit(err error, ee *exitError) bool {
	e, ok := err.(exitError)
	*ee = e
	return ok
}

// portStrings renders exposed ports and bindings for comparison: the
// port types hold unexported fields.
func portStrings(exposed network.PortSet, bindings network.PortMap) ([]string, map[string][]string) {
	var e []string
	for p := range exposed {
		e = append(e, p.String())
	}
	slices.SortFunc(e, naturalCompare)
	var b map[string][]string
	for p, bs := range bindings {
		if b == nil {
			b = map[string][]string{}
		}
		for _, x := range bs {
			ip := ""
			if x.HostIP.IsValid() {
				ip = x.HostIP.String()
			}
			b[p.String()] = append(b[p.String()], ip+"|"+x.HostPort)
		}
	}
	return e, b
}

func TestParsePublish(t *testing.T) {
	tests := []struct {
		specs    []string
		exposed  []string
		bindings map[string][]string // port: "hostIP|hostPort"
	}{
		{nil, nil, nil},
		{[]string{"80"}, []string{"80/tcp"}, map[string][]string{"80/tcp": {"|"}}},
		{[]string{"8080:80"}, []string{"80/tcp"}, map[string][]string{"80/tcp": {"|8080"}}},
		{[]string{"127.0.0.1:8080:80"}, []string{"80/tcp"}, map[string][]string{"80/tcp": {"127.0.0.1|8080"}}},
		{[]string{"127.0.0.1::80"}, []string{"80/tcp"}, map[string][]string{"80/tcp": {"127.0.0.1|"}}},
		{[]string{"[::1]:8080:80"}, []string{"80/tcp"}, map[string][]string{"80/tcp": {"::1|8080"}}},
		{[]string{"53:53/udp", "53:53/tcp"}, []string{"53/tcp", "53/udp"}, map[string][]string{"53/udp": {"|53"}, "53/tcp": {"|53"}}},
		{[]string{"5000:5000/SCTP"}, []string{"5000/sctp"}, map[string][]string{"5000/sctp": {"|5000"}}},
		{[]string{"8000-8001:80-81"}, []string{"80/tcp", "81/tcp"}, map[string][]string{"80/tcp": {"|8000"}, "81/tcp": {"|8001"}}},
		{[]string{"8000-8010:80"}, []string{"80/tcp"}, map[string][]string{"80/tcp": {"|8000-8010"}}},
		{[]string{"7000-7001/udp"}, []string{"7000/udp", "7001/udp"}, map[string][]string{"7000/udp": {"|"}, "7001/udp": {"|"}}},
		{[]string{"8080:80", "127.0.0.1:9090:80"}, []string{"80/tcp"}, map[string][]string{"80/tcp": {"|8080", "127.0.0.1|9090"}}},
		{[]string{"published=8080,target=80"}, []string{"80/tcp"}, map[string][]string{"80/tcp": {"|8080"}}},
		{[]string{"target=53,published=5353,protocol=udp"}, []string{"53/udp"}, map[string][]string{"53/udp": {"|5353"}}},
	}
	for _, tt := range tests {
		exposed, bindings, err := parsePublish(tt.specs)
		if err != nil {
			t.Errorf("parsePublish(%q): %v", tt.specs, err)
			continue
		}
		e, b := portStrings(exposed, bindings)
		if diff := cmp.Diff(tt.exposed, e); diff != "" {
			t.Errorf("parsePublish(%q) exposed (-want +got)\n%s", tt.specs, diff)
		}
		if diff := cmp.Diff(tt.bindings, b); diff != "" {
			t.Errorf("parsePublish(%q) bindings (-want +got)\n%s", tt.specs, diff)
		}
	}
}

func TestParsePublishErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"x":                `--publish "x": invalid containerPort: x`,
		"8080:x":           `--publish "8080:x": invalid containerPort: x`,
		"x:80":             `--publish "x:80": invalid hostPort: x`,
		"80/foo":           `--publish "80/foo": invalid proto: foo`,
		"70000":            `--publish "70000": invalid containerPort: 70000`,
		"1.2.3:80:80":      `--publish "1.2.3:80:80": invalid IP address: 1.2.3`,
		"8000-8002:80-81":  `--publish "8000-8002:80-81": invalid ranges specified for container and host Ports: 80-81 and 8000-8002`,
		"8080:":            `--publish "8080:": no port specified: 8080:<empty>`,
		"published=8080,x": `--publish "published=8080,x": invalid publish opts format (should be name=value but got 'x')`,
	} {
		_, _, err := parsePublish([]string{spec})
		if err == nil || err.Error() != want {
			t.Errorf("parsePublish(%q) = %v, want %q", spec, err, want)
		}
	}
}

func TestRunNetworking(t *testing.T) {
	type result struct {
		Mode       string
		Exposed    []string
		Bindings   map[string][]string
		PublishAll bool
		Endpoints  map[string]*network.EndpointSettings
		ExtraHosts []string
		DNS        []netip.Addr
		DNSSearch  []string
		DNSOptions []string
	}
	tests := []struct {
		args []string
		want result
	}{
		{[]string{"img"}, result{}},
		{[]string{"--network", "none", "img"}, result{Mode: "none"}},
		{[]string{"--net", "host", "img"}, result{Mode: "host"}},
		{[]string{"--network", "container:web", "img"}, result{Mode: "container:web"}},
		{[]string{"--network", "default", "img"}, result{}},
		{[]string{"-p", "8080:80", "-p", "127.0.0.1:53:53/udp", "--expose", "9000-9001", "-P", "img"}, result{
			Exposed:    []string{"53/udp", "80/tcp", "9000/tcp", "9001/tcp"},
			Bindings:   map[string][]string{"80/tcp": {"|8080"}, "53/udp": {"127.0.0.1|53"}},
			PublishAll: true,
		}},
		{[]string{"--network", "app", "--network-alias", "db", "--net-alias", "pg", "--ip", "172.30.0.5", "img"}, result{
			Mode: "app",
			Endpoints: map[string]*network.EndpointSettings{"app": {
				Aliases:    []string{"db", "pg"},
				IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr("172.30.0.5")},
			}},
		}},
		{[]string{"--network", "app", "--network", "backend", "--ip6", "2001:db8::33", "img"}, result{
			Mode: "app",
			Endpoints: map[string]*network.EndpointSettings{
				"app":     {IPAMConfig: &network.EndpointIPAMConfig{IPv6Address: netip.MustParseAddr("2001:db8::33")}},
				"backend": {},
			},
		}},
		// No --network: the endpoint options go to "default", which the
		// daemon resolves to its default network, as with docker.
		{[]string{"--mac-address", "92:d0:c6:0a:29:33", "img"}, result{
			Endpoints: map[string]*network.EndpointSettings{"default": {
				MacAddress: network.HardwareAddr{0x92, 0xd0, 0xc6, 0x0a, 0x29, 0x33},
			}},
		}},
		{[]string{"--add-host", "db:10.0.0.2", "--add-host", "gw=host-gateway", "--add-host", "v6:[::1]", "img"}, result{
			ExtraHosts: []string{"db:10.0.0.2", "gw:host-gateway", "v6:::1"},
		}},
		{[]string{"--dns", "1.1.1.1", "--dns", "2606:4700::1111", "--dns-search", "example.com", "--dns-search", ".", "--dns-option", "ndots:2", "--dns-opt", "edns0", "img"}, result{
			DNS:        []netip.Addr{netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("2606:4700::1111")},
			DNSSearch:  []string{"example.com", "."},
			DNSOptions: []string{"ndots:2", "edns0"},
		}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			req, err := parseRunRequest(t, tt.args...)
			if err != nil {
				t.Fatalf("parse %q: %v", tt.args, err)
			}
			hc := req.hostConfig
			got := result{Mode: string(hc.NetworkMode), PublishAll: hc.PublishAllPorts, ExtraHosts: hc.ExtraHosts}
			got.Exposed, got.Bindings = portStrings(req.config.ExposedPorts, hc.PortBindings)
			if req.networking != nil {
				got.Endpoints = req.networking.EndpointsConfig
			}
			if len(hc.DNS) > 0 {
				got.DNS = hc.DNS
			}
			if len(hc.DNSSearch) > 0 {
				got.DNSSearch = hc.DNSSearch
			}
			if len(hc.DNSOptions) > 0 {
				got.DNSOptions = hc.DNSOptions
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("parse %q: (-want +got)\n%s", tt.args, diff)
			}
			if hc.DNS == nil || hc.DNSSearch == nil || hc.DNSOptions == nil {
				t.Errorf("parse %q: DNS fields nil, want empty lists as docker sends", tt.args)
			}
		})
	}
}

func TestParseExtraHost(t *testing.T) {
	for in, want := range map[string]string{
		"db:10.0.0.2":                       "db:10.0.0.2",
		"db=10.0.0.2":                       "db:10.0.0.2",
		"v6:::1":                            "v6:::1",
		"v6=::1":                            "v6:::1",
		"v6:[2001:db8::1]":                  "v6:2001:db8::1",
		"host.docker.internal:host-gateway": "host.docker.internal:host-gateway",
		"db":                                `bad format for add-host: "db"`,
		":10.0.0.2":                         `bad format for add-host: ":10.0.0.2"`,
		"a:b=10.0.0.2":                      `bad format for add-host: "a:b=10.0.0.2"`,
		"db:10.0.0":                         `invalid IP address in add-host: "10.0.0"`,
		"db:":                               `invalid IP address in add-host: ""`,
	} {
		got, err := parseExtraHost(in)
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("parseExtraHost(%q) = %q, want %q", in, got, want)
		}
	}
}
