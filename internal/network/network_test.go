package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/berth-dev/berth/internal/errdefs"
)

// These tests change the host (bridges, veths, iptables rules, netns
// mounts) and need root. Each uses its own Root, so its names and tag are
// its own, and its own address pool under 10.211.0.0/16 (or 10.212/16
// for explicit subnets), so tests of other packages and daemons on the
// host are not disturbed. Every Manager is destroyed at the end and the
// host checked clean.

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, tool := range []string{"iptables", "iptables-save", "ip", "nsenter", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
}

// env is one test's daemon state: a config and the names it put on the
// host, checked gone at the end.
type env struct {
	t   *testing.T
	cfg Config

	mu    sync.Mutex
	names map[string]bool // host interfaces to check gone
}

func newEnv(t *testing.T, pool string) *env {
	needRoot(t)
	dir := t.TempDir()
	e := &env{
		t: t,
		cfg: Config{
			Root:     filepath.Join(dir, "network"),
			ExecRoot: filepath.Join(dir, "netns"),
			Pool:     netip.MustParsePrefix(pool),
		},
		names: map[string]bool{},
	}
	e.names[defaultBridgeName(e.cfg.Root)] = true
	t.Cleanup(e.assertClean)
	return e
}

// open starts a Manager on the env's config (a daemon start) and destroys
// it at the end of the test.
func (e *env) open() *Manager {
	e.t.Helper()
	ctx := context.Background()
	m, err := New(ctx, e.cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(func() {
		e.remember(m)
		if err := m.Destroy(ctx); err != nil {
			e.t.Errorf("Destroy: %v", err)
		}
	})
	e.remember(m)
	return m
}

// remember records the bridges and veths of m's networks and endpoints.
func (e *env) remember(m *Manager) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range m.List() {
		e.names[n.Bridge] = true
		for _, ep := range m.Endpoints(n.ID) {
			e.names[ep.HostIf] = true
		}
	}
}

// assertClean checks that nothing of the env is left on the host.
func (e *env) assertClean() {
	t := e.t
	out := run(t, "ip", "-br", "link")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		name, _, _ := strings.Cut(f[0], "@")
		if e.names[name] {
			t.Errorf("interface %s is left on the host: %s", name, line)
		}
	}
	tag := rootTag(e.cfg.Root)
	if save := run(t, "iptables-save"); strings.Contains(save, tag) {
		t.Errorf("iptables rules with tag %s are left:\n%s", tag, grepLines(save, tag))
	}
	mounts, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), e.cfg.ExecRoot) {
		t.Errorf("mounts under %s are left:\n%s", e.cfg.ExecRoot, grepLines(string(mounts), e.cfg.ExecRoot))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// sandbox creates a container's sandbox and attaches it to network ref.
func (e *env) sandbox(m *Manager, cid, ref string, o AttachOptions) (string, *Endpoint) {
	e.t.Helper()
	ctx := context.Background()
	path, err := m.CreateSandbox(ctx, cid)
	if err != nil {
		e.t.Fatalf("CreateSandbox(%s): %v", cid, err)
	}
	o.ContainerID = cid
	ep, err := m.Attach(ctx, ref, o)
	if err != nil {
		e.t.Fatalf("Attach(%s, %s): %v", ref, cid, err)
	}
	e.mu.Lock()
	e.names[ep.HostIf] = true
	e.mu.Unlock()
	return path, ep
}

func ping(nsPath string, ip netip.Addr) error {
	out, err := runErr("nsenter", "--net="+nsPath, "busybox", "ping", "-c", "1", "-W", "2", ip.String())
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v\n%s", ip, nsPath, err, out)
	}
	return nil
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// linkStays reports whether a veth is still there 3 s after its sandbox
// went: RemoveSandbox leaves it to the kernel, which frees it with the
// namespace, asynchronously.
func linkStays(name string) bool {
	for range 60 {
		if !linkExists(name) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func nsChainRules(t *testing.T, table, chain string) string {
	return run(t, "iptables", "-w", "-t", table, "-S", chain)
}

func TestNetworkLifecycle(t *testing.T) {
	e := newEnv(t, "10.211.0.0/22")
	m := e.open()
	ctx := context.Background()

	def, err := m.Get("bridge")
	if err != nil {
		t.Fatalf("Get(bridge): %v", err)
	}
	if !def.Default || def.Subnet.String() != "10.211.0.0/24" || def.Gateway.String() != "10.211.0.1" || def.Bridge != defaultBridgeName(e.cfg.Root) {
		t.Fatalf("default network = %+v, want 10.211.0.0/24 via 10.211.0.1 on %s", def, defaultBridgeName(e.cfg.Root))
	}
	if out := run(t, "ip", "-4", "-br", "addr", "show", "dev", def.Bridge); !strings.Contains(out, "10.211.0.1/24") {
		t.Fatalf("default bridge address: %s", out)
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/conf/" + def.Bridge + "/route_localnet"); strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("route_localnet on %s = %q, want 1", def.Bridge, b)
	}

	web, err := m.Create(ctx, CreateOptions{Name: "web", Labels: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatalf("Create(web): %v", err)
	}
	e.remember(m)
	if web.Subnet.String() != "10.211.1.0/24" || web.Bridge != "br-"+web.ID[:12] || web.Driver != "bridge" || web.Labels["a"] != "b" || len(web.ID) != 64 {
		t.Fatalf("web = %+v", web)
	}
	if !linkExists(web.Bridge) {
		t.Fatalf("bridge %s missing", web.Bridge)
	}
	for _, ref := range []string{"web", web.ID, web.ID[:5]} {
		if got, err := m.Get(ref); err != nil || got.ID != web.ID {
			t.Errorf("Get(%s) = %v, %v; want web", ref, got, err)
		}
	}
	if _, err := m.Get("nope"); !errdefs.IsNotFound(err) {
		t.Errorf("Get(nope) = %v, want not found", err)
	}

	api, err := m.Create(ctx, CreateOptions{Name: "api", Subnet: "10.212.4.0/24", Gateway: "10.212.4.254", Internal: true})
	if err != nil {
		t.Fatalf("Create(api): %v", err)
	}
	e.remember(m)
	if api.Gateway.String() != "10.212.4.254" || !api.Internal {
		t.Fatalf("api = %+v", api)
	}
	var names []string
	for _, n := range m.List() {
		names = append(names, n.Name)
	}
	if strings.Join(names, ",") != "api,bridge,web" {
		t.Fatalf("List = %v, want sorted by name", names)
	}

	for _, tt := range []struct {
		o      CreateOptions
		class  error
		errHas []string
	}{
		{CreateOptions{Name: "web"}, errdefs.ErrConflict, []string{"web already exists"}},
		{CreateOptions{Name: "bad name"}, errdefs.ErrInvalidArgument, []string{`"bad name"`}},
		{CreateOptions{Name: "bridge"}, errdefs.ErrPermissionDenied, []string{"pre-defined"}},
		{CreateOptions{Name: "host"}, errdefs.ErrPermissionDenied, []string{"pre-defined"}},
		{CreateOptions{Name: "x", Subnet: "10.212.0.0/99"}, errdefs.ErrInvalidArgument, []string{"10.212.0.0/99"}},
		{CreateOptions{Name: "x", Subnet: "fd00:1::/64"}, errdefs.ErrInvalidArgument, []string{"IPv6", "not supported"}},
		{CreateOptions{Name: "x", Subnet: "10.212.8.0/24", Gateway: "10.212.9.1"}, errdefs.ErrInvalidArgument, []string{"10.212.9.1", "not in subnet"}},
		{CreateOptions{Name: "x", Gateway: "10.212.9.1"}, errdefs.ErrInvalidArgument, []string{"needs a --subnet"}},
		{CreateOptions{Name: "x", Subnet: "10.212.0.0/16"}, errdefs.ErrConflict, []string{`network "x": subnet 10.212.0.0/16 overlaps network "api" (10.212.4.0/24)`}},
		{CreateOptions{Name: "x", Subnet: "10.211.1.128/25"}, errdefs.ErrConflict, []string{`overlaps network "web"`}},
		// eth0's route: a host route of another interface.
		{CreateOptions{Name: "x", Subnet: "192.0.2.0/25"}, errdefs.ErrConflict, []string{"192.0.2.0/25", "overlaps host route 192.0.2.0/24 on eth0"}},
	} {
		_, err := m.Create(ctx, tt.o)
		if !errors.Is(err, tt.class) {
			t.Errorf("Create(%+v) = %v, want class %v", tt.o, err, tt.class)
			continue
		}
		for _, s := range tt.errHas {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Create(%+v) = %q, want it to mention %q", tt.o, err, s)
			}
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("Create(%+v): error is not one line: %q", tt.o, err)
		}
	}
	if _, err := m.Get("x"); !errdefs.IsNotFound(err) {
		t.Fatalf("a failed create left network x: %v", err)
	}

	// The internal network's DROP rules come first in the forward chain.
	fwd := nsChainRules(t, "filter", m.chains.fwd)
	lines := strings.Split(strings.TrimSpace(fwd), "\n")
	if len(lines) < 3 || !strings.Contains(lines[1], "DROP") || !strings.Contains(lines[2], "DROP") || !strings.Contains(lines[1], api.Bridge) {
		t.Errorf("forward chain does not start with api's DROPs:\n%s", fwd)
	}
	if post := nsChainRules(t, "nat", m.chains.post); strings.Contains(post, "10.212.4.0/24") {
		t.Errorf("internal network masquerades:\n%s", post)
	}
	if fw := run(t, "iptables", "-w", "-S", "FORWARD"); !strings.Contains(fw, "-j "+m.chains.fwd) {
		t.Errorf("FORWARD does not jump to %s:\n%s", m.chains.fwd, fw)
	}

	if err := m.Remove(ctx, "bridge"); !errors.Is(err, errdefs.ErrPermissionDenied) {
		t.Errorf("Remove(bridge) = %v, want permission denied", err)
	}
	if err := m.Remove(ctx, "nope"); !errdefs.IsNotFound(err) {
		t.Errorf("Remove(nope) = %v, want not found", err)
	}
	if err := m.Remove(ctx, web.ID[:12]); err != nil {
		t.Fatalf("Remove(web): %v", err)
	}
	if linkExists(web.Bridge) {
		t.Errorf("bridge %s left after Remove", web.Bridge)
	}
	if save := run(t, "iptables-save"); strings.Contains(save, web.ID) || strings.Contains(save, web.Bridge) {
		t.Errorf("rules of web left after Remove:\n%s", grepLines(save, web.Bridge))
	}
	if _, err := os.Stat(m.networkFile(web.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("web's record left: %v", err)
	}
	if _, err := m.Get("web"); !errdefs.IsNotFound(err) {
		t.Errorf("Get(web) after Remove = %v", err)
	}
	// The freed subnet is picked again.
	again, err := m.Create(ctx, CreateOptions{Name: "web2"})
	if err != nil || again.Subnet.String() != "10.211.1.0/24" {
		t.Fatalf("Create(web2) = %+v, %v; want 10.211.1.0/24", again, err)
	}
	e.remember(m)
}

func TestSandboxesPing(t *testing.T) {
	e := newEnv(t, "10.211.4.0/22")
	m := e.open()
	ctx := context.Background()
	n, err := m.Create(ctx, CreateOptions{Name: "net"})
	if err != nil {
		t.Fatal(err)
	}
	e.remember(m)
	pathA, a := e.sandbox(m, "ca", "net", AttachOptions{Aliases: []string{"alpha", "A1"}})
	pathB, b := e.sandbox(m, "cb", n.ID, AttachOptions{Aliases: []string{"beta"}})

	if a.IP.String() != "10.211.5.2" || b.IP.String() != "10.211.5.3" || a.IfName != "eth0" || a.PrefixLen != 24 || a.Gateway != n.Gateway {
		t.Fatalf("endpoints a=%+v b=%+v", a, b)
	}
	if a.MAC != "02:42:0a:d3:05:02" {
		t.Fatalf("a.MAC = %s", a.MAC)
	}
	if p, _ := m.CreateSandbox(ctx, "ca"); p != pathA {
		t.Fatalf("CreateSandbox again = %s, want %s", p, pathA)
	}
	if m.SandboxPath("ca") != pathA {
		t.Fatalf("SandboxPath = %s, want %s", m.SandboxPath("ca"), pathA)
	}
	addr := run(t, "nsenter", "--net="+pathA, "ip", "-o", "addr", "show")
	if !strings.Contains(addr, "eth0") || !strings.Contains(addr, "10.211.5.2/24") || !strings.Contains(addr, "lo") {
		t.Fatalf("addresses in sandbox a:\n%s", addr)
	}
	if link := run(t, "nsenter", "--net="+pathA, "ip", "link", "show", "eth0"); !strings.Contains(link, a.MAC) || !strings.Contains(link, "mtu 1500") {
		t.Fatalf("eth0 in sandbox a:\n%s", link)
	}
	if r := run(t, "nsenter", "--net="+pathA, "ip", "route"); !strings.Contains(r, "default via 10.211.5.1 dev eth0") {
		t.Fatalf("routes in sandbox a:\n%s", r)
	}
	if err := ping(pathA, b.IP); err != nil {
		t.Fatal(err)
	}
	if err := ping(pathB, a.IP); err != nil {
		t.Fatal(err)
	}
	if err := ping(pathA, n.Gateway); err != nil {
		t.Fatal(err)
	}

	if got := m.Resolve(n.ID, "ALPHA"); len(got) != 1 || got[0] != a.IP {
		t.Errorf("Resolve(ALPHA) = %v, want %s", got, a.IP)
	}
	if got := m.Resolve(n.ID, "nobody"); len(got) != 0 {
		t.Errorf("Resolve(nobody) = %v", got)
	}

	_, err = m.Attach(ctx, "net", AttachOptions{ContainerID: "ca"})
	if !errdefs.IsConflict(err) {
		t.Errorf("second Attach = %v, want conflict", err)
	}
	if _, err := m.Attach(ctx, "net", AttachOptions{ContainerID: "nosandbox"}); err == nil {
		t.Errorf("Attach without a sandbox succeeded")
	}
	if _, err := m.CreateSandbox(ctx, "cc"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ip    string
		class error
	}{
		{"10.211.5.2", errdefs.ErrConflict},
		{"10.211.5.1", errdefs.ErrInvalidArgument},
		{"10.211.5.255", errdefs.ErrInvalidArgument},
		{"10.99.0.2", errdefs.ErrInvalidArgument},
	} {
		if _, err := m.Attach(ctx, "net", AttachOptions{ContainerID: "cc", IP: tt.ip}); !errors.Is(err, tt.class) {
			t.Errorf("Attach(IP %s) = %v, want %v", tt.ip, err, tt.class)
		}
	}
	if eps := m.ContainerEndpoints("cc"); len(eps) != 0 {
		t.Fatalf("failed attaches left endpoints: %+v", eps)
	}
	c, err := m.Attach(ctx, "net", AttachOptions{ContainerID: "cc", IP: "10.211.5.77"})
	if err != nil || c.IP.String() != "10.211.5.77" {
		t.Fatalf("Attach(IP 10.211.5.77) = %+v, %v", c, err)
	}
	e.names[c.HostIf] = true
	// A second network: eth1, and the default route stays on eth0.
	_, err = m.Create(ctx, CreateOptions{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	e.remember(m)
	c2, err := m.Attach(ctx, "other", AttachOptions{ContainerID: "cc"})
	if err != nil || c2.IfName != "eth1" {
		t.Fatalf("Attach(other) = %+v, %v; want eth1", c2, err)
	}
	e.names[c2.HostIf] = true
	pathC := m.SandboxPath("cc")
	if r := run(t, "nsenter", "--net="+pathC, "ip", "route"); strings.Count(r, "default") != 1 || !strings.Contains(r, "default via 10.211.5.1 dev eth0") {
		t.Fatalf("routes with two endpoints:\n%s", r)
	}
	// Detaching the default route's endpoint moves it to eth1.
	if err := m.Detach(ctx, "net", "cc"); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if linkExists(c.HostIf) {
		t.Errorf("veth %s left after Detach", c.HostIf)
	}
	if r := run(t, "nsenter", "--net="+pathC, "ip", "route"); !strings.Contains(r, "default via "+c2.Gateway.String()+" dev eth1") {
		t.Errorf("routes after detaching eth0:\n%s", r)
	}
	if err := m.Detach(ctx, "net", "cc"); !errdefs.IsNotFound(err) {
		t.Errorf("second Detach = %v, want not found", err)
	}
	if err := m.Remove(ctx, "other"); !errdefs.IsConflict(err) {
		t.Errorf("Remove of a network in use = %v, want conflict", err)
	}

	if err := m.RemoveSandbox(ctx, "cb"); err != nil {
		t.Fatalf("RemoveSandbox: %v", err)
	}
	if linkStays(b.HostIf) || isNetnsMount(pathB) {
		t.Errorf("RemoveSandbox left veth %s or mount %s", b.HostIf, pathB)
	}
	if _, err := os.Stat(pathB); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RemoveSandbox left %s: %v", pathB, err)
	}
	if err := m.RemoveSandbox(ctx, "cb"); err != nil {
		t.Errorf("second RemoveSandbox: %v", err)
	}
	if eps := m.Endpoints(n.ID); len(eps) != 1 || eps[0].ContainerID != "ca" {
		t.Errorf("Endpoints(net) = %+v, want only ca", eps)
	}
	if err := ping(pathA, b.IP); err == nil {
		t.Errorf("removed sandbox still answers ping")
	}
}

// serveIn listens on :80 inside the sandbox and answers every connection
// with "hi from <name>".
func serveIn(t *testing.T, nsPath, name string) {
	t.Helper()
	var l net.Listener
	err := inNetns(nsPath, func() error {
		var err error
		l, err = net.Listen("tcp4", ":80")
		return err
	})
	if err != nil {
		t.Fatalf("listening in %s: %v", nsPath, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hi from %s\n", name)
			c.Close()
		}
	}()
}

func dial(addr string) (string, error) {
	c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func TestPublish(t *testing.T) {
	e := newEnv(t, "10.211.8.0/22")
	m := e.open()
	ctx := context.Background()
	pathA, a := e.sandbox(m, "ca", "bridge", AttachOptions{})
	serveIn(t, pathA, "a")

	lo := netip.MustParseAddr("127.0.0.1")
	got, err := m.Publish(ctx, "ca", a.IP, []PortMapping{
		{Proto: "tcp", HostIP: lo, ContainerPort: 80},
		{Proto: "tcp", ContainerPort: 80},
		{Proto: "udp", ContainerPort: 53},
	})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if len(got) != 3 || got[0].HostPort == 0 || got[1].HostPort == 0 || got[2].HostPort == 0 || got[0].HostIP != lo {
		t.Fatalf("Publish = %+v, want host ports picked", got)
	}
	if ports := m.Ports("ca"); len(ports) != 3 || ports[1] != got[1] {
		t.Fatalf("Ports = %+v, want %+v", ports, got)
	}
	for _, p := range got[:2] {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p.HostPort)))
		reply, err := dial(addr)
		if err != nil || reply != "hi from a" {
			t.Fatalf("dial %s = %q, %v; want the sandbox's reply\n%s", addr, reply, err, nsChainRules(t, "nat", m.chains.nat))
		}
	}
	natBefore := nsChainRules(t, "nat", m.chains.nat)

	// A port a host process holds.
	hostL, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostL.Close()
	busy := uint16(hostL.Addr().(*net.TCPAddr).Port)
	_, b := e.sandbox(m, "cb", "bridge", AttachOptions{})
	free := freePort(t)
	_, err = m.Publish(ctx, "cb", b.IP, []PortMapping{
		{Proto: "tcp", HostPort: free, ContainerPort: 80},
		{Proto: "tcp", HostIP: lo, HostPort: busy, ContainerPort: 81},
	})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), fmt.Sprintf("host port 127.0.0.1:%d/tcp is already in use", busy)) {
		t.Fatalf("Publish on a port a process holds = %v, want conflict naming it", err)
	}
	// The same port on all addresses clashes too.
	_, err = m.Publish(ctx, "cb", b.IP, []PortMapping{{Proto: "tcp", HostPort: busy, ContainerPort: 81}})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), fmt.Sprintf("host port %d/tcp is already in use", busy)) {
		t.Fatalf("Publish on 0.0.0.0 over a port a process holds on 127.0.0.1 = %v, want conflict", err)
	}
	// A port another container published.
	_, err = m.Publish(ctx, "cb", b.IP, []PortMapping{{Proto: "tcp", HostPort: got[1].HostPort, ContainerPort: 80}})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), fmt.Sprintf("host port %d/tcp is already in use", got[1].HostPort)) {
		t.Fatalf("Publish on a published port = %v, want conflict", err)
	}
	// Twice the same port in one request.
	_, err = m.Publish(ctx, "cb", b.IP, []PortMapping{{Proto: "tcp", HostPort: free, ContainerPort: 80}, {Proto: "tcp", HostPort: free, ContainerPort: 81}})
	if !errdefs.IsConflict(err) {
		t.Fatalf("Publish of one host port twice = %v, want conflict", err)
	}
	if after := nsChainRules(t, "nat", m.chains.nat); after != natBefore {
		t.Fatalf("a failed Publish installed rules:\nbefore:\n%s\nafter:\n%s", natBefore, after)
	}
	if ports := m.Ports("cb"); len(ports) != 0 {
		t.Fatalf("a failed Publish recorded ports: %+v", ports)
	}

	// Another daemon on the host sees this one's ports as taken.
	e2 := newEnv(t, "10.211.12.0/22")
	m2 := e2.open()
	_, c := e2.sandbox(m2, "cc", "bridge", AttachOptions{})
	_, err = m2.Publish(ctx, "cc", c.IP, []PortMapping{{Proto: "udp", HostPort: got[2].HostPort, ContainerPort: 53}})
	if !errdefs.IsConflict(err) {
		t.Fatalf("another daemon publishing a taken port = %v, want conflict", err)
	}

	// Re-publishing replaces the container's mappings.
	again, err := m.Publish(ctx, "ca", a.IP, []PortMapping{{Proto: "tcp", HostIP: lo, HostPort: free, ContainerPort: 80}})
	if err != nil {
		t.Fatalf("re-Publish: %v", err)
	}
	if reply, err := dial(net.JoinHostPort("127.0.0.1", strconv.Itoa(int(free)))); err != nil || reply != "hi from a" {
		t.Fatalf("dial the re-published port = %q, %v", reply, err)
	}
	nat := nsChainRules(t, "nat", m.chains.nat)
	if strings.Count(nat, "DNAT") != 1 || !strings.Contains(nat, "--dport "+strconv.Itoa(int(again[0].HostPort))) {
		t.Fatalf("rules after re-Publish:\n%s", nat)
	}

	if err := m.RemoveSandbox(ctx, "ca"); err != nil {
		t.Fatal(err)
	}
	if nat := nsChainRules(t, "nat", m.chains.nat); strings.Contains(nat, "DNAT") {
		t.Fatalf("port rules left after RemoveSandbox:\n%s", nat)
	}
	if fwd := nsChainRules(t, "filter", m.chains.fwd); strings.Contains(fwd, a.IP.String()) {
		t.Fatalf("forward rules left after RemoveSandbox:\n%s", fwd)
	}
	if ports := m.Ports("ca"); len(ports) != 0 {
		t.Fatalf("Ports after RemoveSandbox = %+v", ports)
	}
}

// freePort is a TCP port free on the host right now.
func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func TestInternalNetwork(t *testing.T) {
	e := newEnv(t, "10.211.16.0/22")
	m := e.open()
	ctx := context.Background()
	n, err := m.Create(ctx, CreateOptions{Name: "secret", Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	e.remember(m)
	pathA, a := e.sandbox(m, "ca", "secret", AttachOptions{})
	pathB, b := e.sandbox(m, "cb", "secret", AttachOptions{})
	if err := ping(pathA, b.IP); err != nil {
		t.Fatal(err)
	}
	if err := ping(pathB, a.IP); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "nsenter", "--net="+pathA, "ip", "route"); strings.Contains(r, "default") {
		t.Errorf("sandbox on an internal network has a default route:\n%s", r)
	}
	fwd := nsChainRules(t, "filter", m.chains.fwd)
	for _, want := range []string{
		fmt.Sprintf("-i %s ! -o %s", n.Bridge, n.Bridge),
		fmt.Sprintf("! -i %s -o %s", n.Bridge, n.Bridge),
	} {
		if !strings.Contains(grepLines(fwd, "DROP"), want) {
			t.Errorf("no DROP rule %q:\n%s", want, fwd)
		}
	}
	if post := nsChainRules(t, "nat", m.chains.post); strings.Contains(post, n.Subnet.String()) {
		t.Errorf("internal network masquerades:\n%s", post)
	}
	ports, err := m.Publish(ctx, "ca", a.IP, []PortMapping{{Proto: "tcp", HostPort: freePort(t), ContainerPort: 80}})
	if err != nil || len(ports) != 0 {
		t.Errorf("Publish on an internal network = %v, %v; want nothing published", ports, err)
	}
}

func TestReconcile(t *testing.T) {
	e := newEnv(t, "10.211.20.0/22")
	m := e.open()
	ctx := context.Background()
	n, err := m.Create(ctx, CreateOptions{Name: "net"})
	if err != nil {
		t.Fatal(err)
	}
	e.remember(m)
	pathA, a := e.sandbox(m, "alive", "net", AttachOptions{})
	pathB, b := e.sandbox(m, "dead", "net", AttachOptions{})
	if _, err := m.Publish(ctx, "dead", b.IP, []PortMapping{{Proto: "tcp", ContainerPort: 80}}); err != nil {
		t.Fatal(err)
	}
	// A sandbox with nothing attached, and a stray veth in the bridge.
	if _, err := m.CreateSandbox(ctx, "bare"); err != nil {
		t.Fatal(err)
	}
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = vethName(e.cfg.Root, "ghost", n.ID)
	attrs.MasterIndex = br.Attrs().Index
	stray := netlink.NewVeth(attrs)
	stray.PeerName = "vz" + attrs.Name[2:]
	if err := netlink.LinkAdd(stray); err != nil {
		t.Fatal(err)
	}
	e.names[attrs.Name] = true
	e.names[stray.PeerName] = true
	t.Cleanup(func() { _ = deleteLink(attrs.Name) })

	if err := m.Reconcile(ctx, func(id string) bool { return id == "alive" }); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if linkExists(b.HostIf) || isNetnsMount(pathB) || len(m.ContainerEndpoints("dead")) != 0 || len(m.Ports("dead")) != 0 {
		t.Errorf("Reconcile left the dead container's veth, sandbox, endpoint or ports")
	}
	if _, err := os.Stat(m.endpointDir("dead")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Reconcile left the dead container's records: %v", err)
	}
	if save := run(t, "iptables-save"); strings.Contains(save, "berth "+m.tag+" dead") {
		t.Errorf("Reconcile left the dead container's rules:\n%s", grepLines(save, "dead"))
	}
	if isNetnsMount(m.SandboxPath("bare")) {
		t.Errorf("Reconcile left the bare sandbox")
	}
	if linkExists(attrs.Name) {
		t.Errorf("Reconcile left the stray veth %s", attrs.Name)
	}
	if !linkExists(a.HostIf) || !isNetnsMount(pathA) || len(m.ContainerEndpoints("alive")) != 1 {
		t.Fatalf("Reconcile removed the live container's network")
	}
	if err := ping(pathA, n.Gateway); err != nil {
		t.Fatal(err)
	}
}

func TestRestartKeepsLeases(t *testing.T) {
	e := newEnv(t, "10.211.24.0/22")
	m1 := e.open()
	ctx := context.Background()
	n, err := m1.Create(ctx, CreateOptions{Name: "net"})
	if err != nil {
		t.Fatal(err)
	}
	e.remember(m1)
	pathA, a := e.sandbox(m1, "ca", "net", AttachOptions{Aliases: []string{"web"}})
	if a.IP.String() != "10.211.25.2" {
		t.Fatalf("a.IP = %s, want 10.211.25.2", a.IP)
	}
	serveIn(t, pathA, "a")
	pub, err := m1.Publish(ctx, "ca", a.IP, []PortMapping{{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), ContainerPort: 80}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m1.Create(ctx, CreateOptions{Name: "late"}); err == nil {
		t.Fatal("Create after Close succeeded")
	}

	// The daemon restarts: a new Manager on the same Root.
	m2 := e.open()
	got, err := m2.Get("net")
	if err != nil || got.ID != n.ID || got.Subnet != n.Subnet {
		t.Fatalf("after restart Get(net) = %+v, %v; want %+v", got, err, n)
	}
	def1, _ := m1.Get("bridge")
	def2, _ := m2.Get("bridge")
	if def1.ID != def2.ID || def1.Subnet != def2.Subnet {
		t.Fatalf("the default network changed across a restart: %+v -> %+v", def1, def2)
	}
	if eps := m2.ContainerEndpoints("ca"); len(eps) != 1 || eps[0].IP != a.IP || m2.Resolve(n.ID, "web")[0] != a.IP {
		t.Fatalf("after restart endpoints of ca = %+v", eps)
	}
	if ports := m2.Ports("ca"); len(ports) != 1 || ports[0] != pub[0] {
		t.Fatalf("after restart Ports(ca) = %+v, want %+v", ports, pub)
	}
	if reply, err := dial(net.JoinHostPort("127.0.0.1", strconv.Itoa(int(pub[0].HostPort)))); err != nil || reply != "hi from a" {
		t.Fatalf("published port after restart = %q, %v", reply, err)
	}
	if _, err := m2.CreateSandbox(ctx, "cb"); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Attach(ctx, "net", AttachOptions{ContainerID: "cb", IP: a.IP.String()}); !errdefs.IsConflict(err) {
		t.Fatalf("Attach with a's leased address after restart = %v, want conflict", err)
	}
	_, b := e.sandbox(m2, "cb", "net", AttachOptions{})
	if b.IP.String() != "10.211.25.3" {
		t.Fatalf("b.IP = %s, want 10.211.25.3 (a's lease survives the restart)", b.IP)
	}
	if err := ping(pathA, b.IP); err != nil {
		t.Fatal(err)
	}
	// Rules are installed once, however often New runs.
	if fwd := nsChainRules(t, "filter", m2.chains.fwd); strings.Count(fwd, "-i "+n.Bridge+" -o "+n.Bridge+" -m comment") != 1 {
		t.Fatalf("rules duplicated by a restart:\n%s", fwd)
	}
	if fw := run(t, "iptables", "-w", "-S", "FORWARD"); strings.Count(fw, m2.chains.fwd) != 1 {
		t.Fatalf("FORWARD jump duplicated by a restart:\n%s", fw)
	}
}

func TestNewCorruptState(t *testing.T) {
	e := newEnv(t, "10.211.28.0/22")
	m := e.open()
	id := strings.Repeat("ab", 32)
	if err := os.WriteFile(m.networkFile(id), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), e.cfg)
	if err == nil || !strings.Contains(err.Error(), m.networkFile(id)) {
		t.Fatalf("New over a corrupt network file = %v, want an error naming the file", err)
	}
	os.Remove(m.networkFile(id))
}

func TestDefaultNetworkConfig(t *testing.T) {
	e := newEnv(t, "10.211.32.0/22")
	custom := "bq" + hashHex(e.cfg.Root)[:8]
	e.names[custom] = true
	e.cfg.DefaultBridge = custom
	e.cfg.DefaultSubnet = netip.MustParsePrefix("10.212.32.0/24")
	m1 := e.open()
	d1, err := m1.Get("bridge")
	if err != nil || d1.Bridge != custom || d1.Subnet != e.cfg.DefaultSubnet || d1.Gateway.String() != "10.212.32.1" {
		t.Fatalf("default network = %+v, %v; want %s on %s", d1, err, e.cfg.DefaultSubnet, custom)
	}
	m1.Close()

	// Opened without settings (to destroy it, say): kept as it is.
	bare := e.cfg
	bare.DefaultBridge, bare.DefaultSubnet = "", netip.Prefix{}
	m2, err := New(context.Background(), bare)
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := m2.Get("bridge"); d2.ID != d1.ID || d2.Bridge != custom || d2.Subnet != d1.Subnet {
		t.Fatalf("default network opened without settings = %+v, want %+v", d2, d1)
	}
	m2.Close()

	// Another subnet in the config re-creates it.
	e.cfg.DefaultSubnet = netip.MustParsePrefix("10.212.33.0/24")
	m3 := e.open()
	d3, _ := m3.Get("bridge")
	if d3.Subnet != e.cfg.DefaultSubnet || d3.Bridge != custom {
		t.Fatalf("default network after a subnet change = %+v", d3)
	}
	addrs := run(t, "ip", "-4", "-br", "addr", "show", "dev", custom)
	if !strings.Contains(addrs, "10.212.33.1/24") || strings.Contains(addrs, "10.212.32.1") {
		t.Fatalf("bridge addresses after a subnet change: %s", addrs)
	}
	if n := len(m3.List()); n != 1 {
		t.Fatalf("%d networks after a subnet change, want 1", n)
	}
}

func TestConcurrentAttach(t *testing.T) {
	e := newEnv(t, "10.211.36.0/22")
	m := e.open()
	ctx := context.Background()
	n, err := m.Create(ctx, CreateOptions{Name: "net"})
	if err != nil {
		t.Fatal(err)
	}
	e.remember(m)
	const count = 6
	var wg sync.WaitGroup
	errs := make(chan error, count)
	stop := make(chan struct{})
	go func() {
		// Readers (DNS, inspect) run while endpoints come and go.
		for {
			select {
			case <-stop:
				return
			default:
				m.Resolve(n.ID, "c0")
				m.List()
				m.Endpoints(n.ID)
			}
		}
	}()
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cid := fmt.Sprintf("c%d", i)
			e.mu.Lock()
			e.names[vethName(e.cfg.Root, cid, n.ID)] = true
			e.mu.Unlock()
			if _, err := m.CreateSandbox(ctx, cid); err != nil {
				errs <- err
				return
			}
			if _, err := m.Attach(ctx, "net", AttachOptions{ContainerID: cid, Aliases: []string{cid}}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[netip.Addr]bool{}
	for _, ep := range m.Endpoints(n.ID) {
		if seen[ep.IP] {
			t.Fatalf("address %s handed out twice", ep.IP)
		}
		seen[ep.IP] = true
	}
	if len(seen) != count {
		t.Fatalf("%d endpoints, want %d", len(seen), count)
	}
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.RemoveSandbox(ctx, fmt.Sprintf("c%d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if eps := m.Endpoints(n.ID); len(eps) != 0 {
		t.Fatalf("endpoints left: %+v", eps)
	}
}
