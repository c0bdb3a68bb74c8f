package e2e

// The networking suite: bridge networks, DNS by container name, published
// ports, internal networks, and what is left on the host afterwards. All
// traffic goes to 127.0.0.1 or to addresses berth gave its containers.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// httpdCmd serves a one-line page on port 80 of the container.
func httpdCmd(page string) []string {
	return []string{"sh", "-c", "mkdir -p /www && echo " + page + " > /www/index.html && exec httpd -f -p 80 -h /www"}
}

// freePort finds a TCP port free on 127.0.0.1 right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// get fetches a URL from the host, retrying while the server starts.
func get(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	var last error
	for i := 0; i < 50; i++ {
		res, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return string(b)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}

// netTag is the tag the network manager puts in its iptables chains and
// rule comments for a daemon's root.
func netTag(d *testutil.Daemon) string {
	sum := sha256.Sum256([]byte(filepath.Join(d.Root, "network")))
	return hex.EncodeToString(sum[:])[:6]
}

func iptablesSave(t *testing.T) string {
	t.Helper()
	var all strings.Builder
	for _, table := range []string{"filter", "nat"} {
		out, err := exec.Command("iptables-save", "-t", table).CombinedOutput()
		if err != nil {
			t.Fatalf("iptables-save: %v\n%s", err, out)
		}
		all.Write(out)
	}
	return all.String()
}

// links lists the host's network interfaces.
func links(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestNetworkDNSByName(t *testing.T) {
	d := ctrDaemon(t, "berth")
	mustB(t, d, "", "network", "create", "appnet")
	mustB(t, d, "", append([]string{"run", "-d", "--name", "api", "--network", "appnet", "--network-alias", "backend", "busybox"}, httpdCmd("hello-api")...)...)
	// By name, by alias, and a second container finding the first.
	for _, host := range []string{"api", "backend", "API"} {
		out := mustB(t, d, "", "run", "--rm", "--network", "appnet", "busybox",
			"sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 2 wget -q -O- http://"+host+"/ && exit 0; sleep 0.3; done; exit 1")
		if strings.TrimSpace(out) != "hello-api" {
			t.Fatalf("wget http://%s/ on a user network: got %q", host, out)
		}
	}
	// The resolver is berth's, on the gateway; other names go to the host's
	// resolvers (none answer here, so only the local names are checked).
	gw := inspectField(t, d, "api", `{{(index .NetworkSettings.Networks "appnet").Gateway}}`)
	resolv := mustB(t, d, "", "run", "--rm", "--network", "appnet", "busybox", "cat", "/etc/resolv.conf")
	if !strings.Contains(resolv, "nameserver "+gw) {
		t.Fatalf("resolv.conf on a user network does not name the gateway %s:\n%s", gw, resolv)
	}
	// Inspect shows the address, and /etc/hosts has the container's own.
	ip := inspectField(t, d, "api", `{{(index .NetworkSettings.Networks "appnet").IPAddress}}`)
	if net.ParseIP(ip) == nil {
		t.Fatalf("inspect IPAddress = %q", ip)
	}
	hosts := mustB(t, d, "", "exec", "api", "cat", "/etc/hosts")
	if !strings.Contains(hosts, ip+"\t") {
		t.Fatalf("/etc/hosts lacks the container's address %s:\n%s", ip, hosts)
	}
	// The docker CLI drives the same networks.
	mustD(t, d, "network", "create", "--subnet", "10.213.5.0/24", "dnet")
	if ls := mustD(t, d, "network", "ls", "--format", "{{.Name}} {{.Driver}}"); !strings.Contains(ls, "dnet bridge") || !strings.Contains(ls, "host host") {
		t.Fatalf("docker network ls:\n%s", ls)
	}
	mustD(t, d, "network", "connect", "dnet", "api")
	if sub := mustD(t, d, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}} {{len .Containers}}", "dnet"); strings.TrimSpace(sub) != "10.213.5.0/24 1" {
		t.Fatalf("docker network inspect dnet: %q", sub)
	}
	if out := mustD(t, d, "run", "--rm", "--network", "dnet", "busybox", "sh", "-c",
		"for i in 1 2 3 4 5 6 7 8 9 10; do timeout 2 wget -q -O- http://api/ && exit 0; sleep 0.3; done; exit 1"); strings.TrimSpace(out) != "hello-api" {
		t.Fatalf("docker run on a network made by docker network create: %q", out)
	}
	mustD(t, d, "network", "disconnect", "dnet", "api")
	mustD(t, d, "network", "rm", "dnet")

	// The default bridge has no DNS by name, as in Docker.
	// (busybox's wget -T segfaults in Debian's build: timeout(1) bounds it.)
	_, _, code := d.Berth("", "run", "--rm", "busybox", "timeout", "2", "wget", "-q", "-O-", "http://api/")
	if code == 0 {
		t.Fatal("a container on the default bridge resolved a name on a user network")
	}
}

func TestNetworkPublishedPorts(t *testing.T) {
	d := ctrDaemon(t, "berth")
	p1, p2 := freePort(t), freePort(t)
	mustB(t, d, "", append([]string{"run", "-d", "--name", "web", "-p", fmt.Sprintf("127.0.0.1:%d:80", p1), "-p", fmt.Sprintf("%d:80/tcp", p2), "busybox"}, httpdCmd("hello-web")...)...)
	for _, p := range []int{p1, p2} {
		if got := get(t, fmt.Sprintf("http://127.0.0.1:%d/", p)); strings.TrimSpace(got) != "hello-web" {
			t.Fatalf("GET 127.0.0.1:%d: %q", p, got)
		}
	}
	out := mustB(t, d, "", "port", "web")
	if !strings.Contains(out, fmt.Sprintf("80/tcp -> 127.0.0.1:%d", p1)) || !strings.Contains(out, fmt.Sprintf("80/tcp -> 0.0.0.0:%d", p2)) {
		t.Fatalf("berth port web:\n%s", out)
	}
	ps := mustB(t, d, "", "ps", "--format", "{{.Ports}}")
	if !strings.Contains(ps, fmt.Sprintf("127.0.0.1:%d->80/tcp", p1)) {
		t.Fatalf("ps PORTS: %q", ps)
	}
	// -P publishes EXPOSEd ports on ephemeral host ports.
	mustB(t, d, "", append([]string{"run", "-d", "--name", "web2", "--expose", "80", "-P", "busybox"}, httpdCmd("hello-p")...)...)
	hp := strings.TrimSpace(mustB(t, d, "", "port", "web2", "80"))
	if _, port, err := net.SplitHostPort(hp); err != nil || port == "0" {
		t.Fatalf("port web2 80 = %q", hp)
	} else if got := get(t, "http://127.0.0.1:"+port+"/"); strings.TrimSpace(got) != "hello-p" {
		t.Fatalf("GET -P port %s: %q", port, got)
	}

	// A host port in use: a clear error before the container runs, and
	// nothing installed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	before := iptablesSave(t)
	_, errOut, code := d.Berth("", "run", "-d", "--name", "clash", "-p", fmt.Sprintf("127.0.0.1:%d:80", busy), "busybox", "sleep", "100")
	if code == 0 || !strings.Contains(errOut, fmt.Sprint(busy)) {
		t.Fatalf("publishing a busy port: exit %d, stderr %q", code, errOut)
	}
	if st := inspectField(t, d, "clash", "{{.State.Status}}"); st == "running" {
		t.Fatal("the container with a busy port runs")
	}
	if after := iptablesSave(t); strings.Count(after, "\n-A ") != strings.Count(before, "\n-A ") {
		t.Fatalf("a failed publish changed the iptables rules:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Two containers cannot publish the same host port.
	_, errOut, code = d.Berth("", "run", "-d", "-p", fmt.Sprintf("127.0.0.1:%d:80", p1), "busybox", "sleep", "100")
	if code == 0 {
		t.Fatalf("a second container published port %d: %s", p1, errOut)
	}

	// The docker CLI sees the same.
	if out := mustD(t, d, "port", "web", "80/tcp"); !strings.Contains(out, fmt.Sprintf("127.0.0.1:%d", p1)) {
		t.Fatalf("docker port web: %q", out)
	}
}

func TestNetworkModes(t *testing.T) {
	d := ctrDaemon(t, "berth")
	if got := strings.Fields(mustB(t, d, "", "run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net")); len(got) != 1 || got[0] != "lo" {
		t.Fatalf("--network none interfaces: %v, want only lo", got)
	}
	got := strings.Fields(mustB(t, d, "", "run", "--rm", "busybox", "ls", "/sys/class/net"))
	if strings.Join(got, " ") != "eth0 lo" {
		t.Fatalf("default network interfaces: %v, want eth0 and lo", got)
	}
	// container:X shares X's network namespace.
	mustB(t, d, "", append([]string{"run", "-d", "--name", "srv", "busybox"}, httpdCmd("shared")...)...)
	out := mustB(t, d, "", "run", "--rm", "--network", "container:srv", "busybox",
		"sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 2 wget -q -O- http://127.0.0.1/ && exit 0; sleep 0.3; done; exit 1")
	if strings.TrimSpace(out) != "shared" {
		t.Fatalf("--network container:srv: %q", out)
	}
	// --add-host (host-gateway is the default bridge's gateway), --dns,
	// --dns-search, --dns-option.
	gw := strings.TrimSpace(mustB(t, d, "", "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", "bridge"))
	files := mustB(t, d, "", "run", "--rm", "--add-host", "db.test:10.9.8.7", "--add-host", "host.test:host-gateway",
		"--dns", "10.0.0.53", "--dns-search", "example.test", "--dns-option", "ndots:2", "busybox", "cat", "/etc/hosts", "/etc/resolv.conf")
	for _, want := range []string{"10.9.8.7\tdb.test", gw + "\thost.test", "nameserver 10.0.0.53", "search example.test", "options ndots:2"} {
		if !strings.Contains(files, want) {
			t.Errorf("hosts and resolv.conf lack %q:\n%s", want, files)
		}
	}
	// Connect and disconnect a running container.
	mustB(t, d, "", "network", "create", "extra")
	mustB(t, d, "", "network", "connect", "--alias", "srv-extra", "extra", "srv")
	ifs := mustB(t, d, "", "exec", "srv", "ls", "/sys/class/net")
	if !strings.Contains(ifs, "eth1") {
		t.Fatalf("after connect, interfaces: %q", ifs)
	}
	if _, _, code := d.Berth("", "network", "connect", "extra", "srv"); code == 0 {
		t.Fatal("connecting a container twice succeeded")
	}
	if _, errOut, code := d.Berth("", "network", "rm", "extra"); code == 0 || !strings.Contains(errOut, "active endpoints") {
		t.Fatalf("removing a network in use: exit %d, %q", code, errOut)
	}
	mustB(t, d, "", "network", "disconnect", "extra", "srv")
	if ifs := mustB(t, d, "", "exec", "srv", "ls", "/sys/class/net"); strings.Contains(ifs, "eth1") {
		t.Fatalf("after disconnect, interfaces: %q", ifs)
	}
	mustB(t, d, "", "network", "rm", "extra")
}

func TestNetworkBadInput(t *testing.T) {
	d := ctrDaemon(t, "berth")
	mustB(t, d, "", "network", "create", "--subnet", "10.212.7.0/24", "first")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "--subnet", "10.212.7.128/25", "overlap"}, "overlaps"},
		{[]string{"network", "create", "--subnet", "10.212.300.0/24", "badcidr"}, "10.212.300.0/24"},
		{[]string{"network", "create", "--subnet", "10.212.8.0/24", "--gateway", "10.212.9.1", "badgw"}, "10.212.9.1"},
		{[]string{"network", "create", "first"}, "first"},
		{[]string{"network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "noicc"}, "enable_icc"},
		{[]string{"network", "rm", "bridge"}, "pre-defined"},
		{[]string{"network", "rm", "nosuchnet"}, "nosuchnet"},
		{[]string{"run", "--rm", "--network", "nosuchnet", "busybox", "true"}, "nosuchnet"},
		{[]string{"run", "--rm", "--network-alias", "x", "busybox", "true"}, "network-scoped alias"},
		{[]string{"run", "--rm", "--network", "first", "--ip", "10.99.0.5", "busybox", "true"}, "10.99.0.5"},
	}
	for _, tc := range cases {
		// One line says what is wrong (the CLI may add docker's "See
		// 'berth CMD --help'." after it).
		_, errOut, code := d.Berth("", tc.args...)
		first, _, _ := strings.Cut(errOut, "\n")
		if code == 0 || !strings.Contains(first, tc.want) {
			t.Errorf("berth %s: exit %d, stderr %q; want a one-line error naming %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
	// Nothing half-made: only the networks we expect.
	ls := mustB(t, d, "", "network", "ls", "--format", "{{.Name}}")
	if strings.Fields(ls) == nil || strings.Join(strings.Fields(ls), " ") != "bridge first host none" {
		t.Fatalf("network ls after bad input: %q", ls)
	}
	// A requested address is honoured, and not handed out twice.
	mustB(t, d, "", "run", "-d", "--name", "fixed", "--network", "first", "--ip", "10.212.7.50", "busybox", "sleep", "100")
	if ip := inspectField(t, d, "fixed", `{{(index .NetworkSettings.Networks "first").IPAddress}}`); ip != "10.212.7.50" {
		t.Fatalf("--ip: got %s", ip)
	}
	if _, _, code := d.Berth("", "run", "-d", "--network", "first", "--ip", "10.212.7.50", "busybox", "sleep", "100"); code == 0 {
		t.Fatal("the same --ip was handed out twice")
	}
}

func TestNetworkInternal(t *testing.T) {
	d := ctrDaemon(t, "berth")
	// "Outside" is a container of a second daemon: an address berth made,
	// reached only by routing through the host, as the internet would be.
	other := ctrDaemon(t, "berth")
	// Its port is published: a bridge takes in from outside only what is
	// published (and replies).
	mustB(t, other, "", append([]string{"run", "-d", "--name", "target", "-p", "127.0.0.1::80", "busybox"}, httpdCmd("reached")...)...)
	target := inspectField(t, other, "target", `{{.NetworkSettings.Networks.bridge.IPAddress}}`)
	try := func(ip string) string {
		return "for i in 1 2 3 4 5; do timeout 1 wget -q -O- http://" + ip + "/ && exit 0; sleep 0.2; done; exit 1"
	}
	mustB(t, d, "", "network", "create", "--internal", "sealed")
	mustB(t, d, "", "network", "create", "open")
	// From an ordinary network the address is reachable; from an internal
	// one it is not.
	if out := mustB(t, d, "", "run", "--rm", "--network", "open", "busybox", "sh", "-c", try(target)); strings.TrimSpace(out) != "reached" {
		t.Fatalf("from an ordinary network: %q", out)
	}
	if out, _, code := d.Berth("", "run", "--rm", "--network", "sealed", "busybox", "sh", "-c", try(target)); code == 0 {
		t.Fatalf("a container on an internal network reached %s: %q", target, out)
	}
	// A port that is not published is not reachable from outside its
	// bridge, though the host forwards (ip_forward) and its FORWARD
	// policy accepts.
	mustB(t, other, "", append([]string{"run", "-d", "--name", "private", "busybox"}, httpdCmd("private")...)...)
	private := inspectField(t, other, "private", `{{.NetworkSettings.Networks.bridge.IPAddress}}`)
	if out, _, code := d.Berth("", "run", "--rm", "--network", "open", "busybox", "sh", "-c", try(private)); code == 0 {
		t.Fatalf("an unpublished port of another bridge's container was reached: %q", out)
	}
	// Inside the internal network, containers still reach each other.
	mustB(t, d, "", append([]string{"run", "-d", "--name", "inner", "--network", "sealed", "busybox"}, httpdCmd("inner")...)...)
	if out := mustB(t, d, "", "run", "--rm", "--network", "sealed", "busybox", "sh", "-c", try("inner")); strings.TrimSpace(out) != "inner" {
		t.Fatalf("inside an internal network: %q", out)
	}
	// Networks of one daemon are isolated from each other, as Docker's:
	// a container on "open" cannot reach one on "sealed" or the default
	// bridge.
	mustB(t, d, "", append([]string{"run", "-d", "--name", "onbridge", "busybox"}, httpdCmd("bridge")...)...)
	for _, name := range []string{"inner", "onbridge"} {
		net := "sealed"
		if name == "onbridge" {
			net = "bridge"
		}
		ip := inspectField(t, d, name, `{{(index .NetworkSettings.Networks "`+net+`").IPAddress}}`)
		if out, _, code := d.Berth("", "run", "--rm", "--network", "open", "busybox", "sh", "-c", try(ip)); code == 0 {
			t.Fatalf("a container on network open reached %s on network %s: %q", name, net, out)
		}
	}
}

func TestNetworkSurvivesDaemonAndCleansUp(t *testing.T) {
	d := ctrDaemon(t, "berth")
	tag := netTag(d)
	linksBefore := strings.Join(links(t), " ")
	mustB(t, d, "", "network", "create", "keep")
	port := freePort(t)
	mustB(t, d, "", append([]string{"run", "-d", "--name", "svc", "--network", "keep", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), "busybox"}, httpdCmd("alive")...)...)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if got := get(t, url); strings.TrimSpace(got) != "alive" {
		t.Fatalf("before kill: %q", got)
	}
	// kill -9 of the daemon: the published port keeps working (the kernel
	// forwards it), and after a restart names resolve again.
	d.Kill9()
	if got := get(t, url); strings.TrimSpace(got) != "alive" {
		t.Fatalf("with the daemon dead: %q", got)
	}
	d.Restart()
	if got := get(t, url); strings.TrimSpace(got) != "alive" {
		t.Fatalf("after restart: %q", got)
	}
	if out := mustB(t, d, "", "run", "--rm", "--network", "keep", "busybox", "sh", "-c",
		"for i in 1 2 3 4 5 6 7 8 9 10; do timeout 2 wget -q -O- http://svc/ && exit 0; sleep 0.3; done; exit 1"); strings.TrimSpace(out) != "alive" {
		t.Fatalf("DNS after restart: %q", out)
	}
	if !strings.Contains(iptablesSave(t), tag) {
		t.Fatalf("no iptables rule carries the daemon's tag %s", tag)
	}

	// Remove everything: no veth, namespace, lease or per-container rule
	// is left; the user network's bridge is gone too.
	id := inspectField(t, d, "svc", "{{.Id}}")
	mustB(t, d, "", "rm", "-f", "svc")
	mustB(t, d, "", "network", "rm", "keep")
	rules := iptablesSave(t)
	if strings.Contains(rules, id) || strings.Contains(rules, fmt.Sprintf("--dport %d", port)) {
		t.Fatalf("rules of the removed container are left:\n%s", rules)
	}
	// The kernel frees a container's veth with its namespace, a moment
	// after the container is gone.
	now := strings.Join(links(t), " ")
	for i := 0; i < 60 && len(strings.Fields(now)) > len(strings.Fields(linksBefore)); i++ {
		time.Sleep(50 * time.Millisecond)
		now = strings.Join(links(t), " ")
	}
	if len(strings.Fields(now)) > len(strings.Fields(linksBefore)) {
		t.Fatalf("interfaces left: before %q, now %q", linksBefore, now)
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	if strings.Contains(string(mounts), filepath.Join(d.ExecRoot, "netns")) {
		t.Fatalf("a network namespace mount is left:\n%s", mounts)
	}
	leases, _ := filepath.Glob(filepath.Join(d.Root, "network", "endpoints", "*", "*"))
	if len(leases) > 0 {
		t.Fatalf("leases left: %v", leases)
	}
}
