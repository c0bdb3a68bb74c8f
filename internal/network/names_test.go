package network

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-dev/berth/internal/errdefs"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name  string
		class error // nil: valid
	}{
		{"web", nil},
		{"my_net.1-a", nil},
		{"0abc", nil},
		{"", errdefs.ErrInvalidArgument},
		{"-web", errdefs.ErrInvalidArgument},
		{".web", errdefs.ErrInvalidArgument},
		{"we b", errdefs.ErrInvalidArgument},
		{"web/1", errdefs.ErrInvalidArgument},
		{"bridge", errdefs.ErrPermissionDenied},
		{"host", errdefs.ErrPermissionDenied},
		{"none", errdefs.ErrPermissionDenied},
	}
	for _, tt := range tests {
		err := checkName(tt.name)
		if tt.class == nil && err != nil || tt.class != nil && !errors.Is(err, tt.class) {
			t.Errorf("checkName(%q) = %v, want class %v", tt.name, err, tt.class)
		}
	}
}

func TestCheckContainerID(t *testing.T) {
	for _, id := range []string{"", ".", "..", "a/b", "../x", "-x"} {
		if err := checkContainerID(id); !errdefs.IsInvalidArgument(err) {
			t.Errorf("checkContainerID(%q) = %v, want invalid", id, err)
		}
	}
	if err := checkContainerID(strings.Repeat("ab", 32)); err != nil {
		t.Errorf("checkContainerID(64 hex) = %v", err)
	}
}

func TestMACFor(t *testing.T) {
	got := macFor(netip.MustParseAddr("172.17.0.2"))
	if want := "02:42:ac:11:00:02"; got != want {
		t.Fatalf("macFor(172.17.0.2) = %s, want %s", got, want)
	}
}

func TestHostNames(t *testing.T) {
	if got := defaultBridgeName(systemRoot); got != "berth0" {
		t.Errorf("defaultBridgeName(%s) = %s, want berth0", systemRoot, got)
	}
	for _, root := range []string{"/tmp/a/network", "/tmp/b/network"} {
		b := defaultBridgeName(root)
		if len(b) != 10 || !strings.HasPrefix(b, "bt") || len(b) > maxIfName {
			t.Errorf("defaultBridgeName(%s) = %s, want bt + 8 hex", root, b)
		}
		cs := chainsFor(rootTag(root))
		for _, c := range []string{cs.fwd, cs.nat, cs.post} {
			if len(c) > maxChainName || !strings.HasPrefix(c, "BERTH-"+rootTag(root)+"-") {
				t.Errorf("chain %q: want BERTH-<tag>- prefix and at most %d chars", c, maxChainName)
			}
		}
		v := vethName(root, "c1", strings.Repeat("f", 64))
		if len(v) != 12 || !strings.HasPrefix(v, vethPrefix) {
			t.Errorf("vethName = %s, want vb + 10 hex", v)
		}
	}
	if defaultBridgeName("/tmp/a/network") == defaultBridgeName("/tmp/b/network") {
		t.Error("two roots got the same default bridge")
	}
	if vethName("/r1", "c", "n") == vethName("/r2", "c", "n") {
		t.Error("two roots got the same veth name")
	}
	if !natChainName.MatchString(chainsFor(rootTag("/x")).nat) {
		t.Error("natChainName does not match our own NAT chain")
	}
	id := newID()
	if len(id) != 64 || len(userBridgeName(id)) > maxIfName {
		t.Errorf("newID = %s (bridge %s)", id, userBridgeName(id))
	}
}

func TestParseSubnet(t *testing.T) {
	tests := []struct {
		subnet, gw    string
		wantSub, want string // want: gateway; "" = error
		errHas        string
	}{
		{"10.1.0.0/16", "", "10.1.0.0/16", "10.1.0.1", ""},
		{"10.1.2.3/24", "", "10.1.2.0/24", "10.1.2.1", ""},
		{"10.1.0.0/24", "10.1.0.254", "10.1.0.0/24", "10.1.0.254", ""},
		{"10.1.0.0/33", "", "", "", `"10.1.0.0/33"`},
		{"banana", "", "", "", `--subnet "banana"`},
		{"fd00::/64", "", "", "", "IPv6 networks are not supported yet"},
		{"10.1.0.0/31", "", "", "", "too small"},
		{"10.1.0.0/24", "10.2.0.1", "", "", "not in subnet 10.1.0.0/24"},
		{"10.1.0.0/24", "10.1.0.255", "", "", "broadcast"},
		{"10.1.0.0/24", "10.1.0.0", "", "", "network or broadcast"},
		{"10.1.0.0/24", "x", "", "", `--gateway "x"`},
	}
	for _, tt := range tests {
		sub, gw, err := parseSubnet(tt.subnet, tt.gw)
		if tt.want == "" {
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("parseSubnet(%q, %q) = %v, want invalid error containing %q", tt.subnet, tt.gw, err, tt.errHas)
			}
			continue
		}
		if err != nil || sub.String() != tt.wantSub || gw.String() != tt.want {
			t.Errorf("parseSubnet(%q, %q) = %v, %v, %v; want %s, %s", tt.subnet, tt.gw, sub, gw, err, tt.wantSub, tt.want)
		}
	}
}

func TestPickSubnet(t *testing.T) {
	pfx := netip.MustParsePrefix
	pool := pfx("10.211.0.0/22")
	tests := []struct {
		used []netip.Prefix
		want string // "" = none free
	}{
		{nil, "10.211.0.0/24"},
		{[]netip.Prefix{pfx("10.211.0.0/24")}, "10.211.1.0/24"},
		// A host route covering part of a /24 takes all of it.
		{[]netip.Prefix{pfx("10.211.0.128/25"), pfx("10.211.1.7/32")}, "10.211.2.0/24"},
		// A route covering the whole pool leaves nothing.
		{[]netip.Prefix{pfx("10.0.0.0/8")}, ""},
		{[]netip.Prefix{pfx("10.211.0.0/23"), pfx("10.211.2.0/24"), pfx("10.211.3.0/24")}, ""},
		{[]netip.Prefix{pfx("192.168.0.0/16"), pfx("10.211.0.0/24")}, "10.211.1.0/24"},
	}
	for _, tt := range tests {
		got, ok := pickSubnet(pool, tt.used)
		if tt.want == "" {
			if ok {
				t.Errorf("pickSubnet(%s, %v) = %s, want none", pool, tt.used, got)
			}
			continue
		}
		if !ok || got.String() != tt.want {
			t.Errorf("pickSubnet(%s, %v) = %s, %v; want %s", pool, tt.used, got, ok, tt.want)
		}
	}
	if got, ok := pickSubnet(pfx("10.211.0.0/25"), nil); ok {
		t.Errorf("pickSubnet of a pool smaller than /24 = %s, want none", got)
	}
}

func TestAllocateIP(t *testing.T) {
	n := &Network{Name: "n", Subnet: netip.MustParsePrefix("10.1.0.0/29"), Gateway: netip.MustParseAddr("10.1.0.1")}
	held := map[netip.Addr]bool{}
	leased := func(a netip.Addr) bool { return held[a] }
	var got []string
	for {
		ip, err := allocateIP(n, leased)
		if err != nil {
			if !errors.Is(err, errdefs.ErrResourceExhausted) {
				t.Fatalf("allocateIP when full = %v, want resource exhausted", err)
			}
			break
		}
		held[ip] = true
		got = append(got, ip.String())
	}
	want := []string{"10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("allocations (-want +got):\n%s", diff)
	}
	delete(held, netip.MustParseAddr("10.1.0.4"))
	if ip, _ := allocateIP(n, leased); ip.String() != "10.1.0.4" {
		t.Fatalf("allocateIP after a release = %s, want 10.1.0.4", ip)
	}

	for _, tt := range []struct {
		req   string
		class error
	}{
		{"10.1.0.3", errdefs.ErrConflict},
		{"10.1.0.1", errdefs.ErrInvalidArgument},
		{"10.1.0.0", errdefs.ErrInvalidArgument},
		{"10.1.0.7", errdefs.ErrInvalidArgument},
		{"10.2.0.3", errdefs.ErrInvalidArgument},
		{"fe80::1", errdefs.ErrInvalidArgument},
		{"x", errdefs.ErrInvalidArgument},
	} {
		if _, err := checkRequestedIP(n, tt.req, leased); !errors.Is(err, tt.class) {
			t.Errorf("checkRequestedIP(%s) = %v, want %v", tt.req, err, tt.class)
		}
	}
	if ip, err := checkRequestedIP(n, "10.1.0.4", leased); err != nil || ip.String() != "10.1.0.4" {
		t.Errorf("checkRequestedIP(10.1.0.4) = %v, %v", ip, err)
	}
}

func TestBroadcast(t *testing.T) {
	for in, want := range map[string]string{"10.1.0.0/24": "10.1.0.255", "10.1.0.0/16": "10.1.255.255", "10.1.0.4/30": "10.1.0.7"} {
		if got := broadcast(netip.MustParsePrefix(in)); got.String() != want {
			t.Errorf("broadcast(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestSplitRuleAndParseDNAT(t *testing.T) {
	line := `-A BERTH-abc123-NAT -d 127.0.0.1/32 ! -i br-0123456789ab -p tcp -m tcp --dport 8080 -m comment --comment "berth abc123 c1" -j DNAT --to-destination 10.1.0.2:80`
	args := splitRule(line)
	if args[0] != "-A" || args[1] != "BERTH-abc123-NAT" {
		t.Fatalf("splitRule: %q", args)
	}
	if c, _ := flagValue(args, "--comment"); c != "berth abc123 c1" {
		t.Fatalf("comment = %q, want the quoted words as one argument", c)
	}
	u, ok := parseDNAT(args)
	want := usedPort{proto: "tcp", hostIP: netip.MustParseAddr("127.0.0.1"), port: 8080, owner: "berth abc123 c1"}
	if !ok || u != want {
		t.Fatalf("parseDNAT = %+v, %v; want %+v", u, ok, want)
	}
	if _, ok := parseDNAT(splitRule(`-A BERTH-abc123-NAT -j RETURN`)); ok {
		t.Fatal("parseDNAT accepted a non-DNAT rule")
	}
	if got := splitRule(`-A X -m comment --comment "a \"b\" c" -j ACCEPT`); got[5] != `a "b" c` {
		t.Fatalf("escaped quotes: %q", got)
	}
}

func TestClashes(t *testing.T) {
	all := netip.Addr{}
	lo := netip.MustParseAddr("127.0.0.1")
	other := netip.MustParseAddr("192.0.2.2")
	tests := []struct {
		a, b netip.Addr
		pa   string
		pb   string
		want bool
	}{
		{all, all, "tcp", "tcp", true},
		{lo, all, "tcp", "tcp", true},
		{lo, lo, "tcp", "tcp", true},
		{lo, other, "tcp", "tcp", false},
		{all, all, "tcp", "udp", false},
	}
	for _, tt := range tests {
		if got := clashes(tt.pa, tt.a, 80, tt.pb, tt.b, 80); got != tt.want {
			t.Errorf("clashes(%s %v, %s %v) = %v, want %v", tt.pa, tt.a, tt.pb, tt.b, got, tt.want)
		}
	}
	if clashes("tcp", all, 80, "tcp", all, 81) {
		t.Error("different ports clash")
	}
}

func TestNetworkRules(t *testing.T) {
	m := &Manager{tag: "abc123", chains: chainsFor("abc123")}
	n := &Network{ID: "nid", Bridge: "br-x", Subnet: netip.MustParsePrefix("10.1.0.0/24")}
	var got []string
	for _, r := range m.networkRules(n) {
		got = append(got, r.chain+" "+strings.Join(r.spec, " "))
	}
	c := `-m comment --comment berth abc123 nid`
	want := []string{
		"BERTH-abc123-POST -s 10.1.0.0/24 ! -o br-x " + c + " -j MASQUERADE",
		"BERTH-abc123-POST -s 127.0.0.0/8 -o br-x " + c + " -j MASQUERADE",
		"BERTH-abc123-FWD -i br-x -o br-x " + c + " -j ACCEPT",
		"BERTH-abc123-FWD -i br-x ! -o br-x " + c + " -j BERTH-abc123-ISO",
		"BERTH-abc123-ISO -o br-x " + c + " -j DROP",
		"BERTH-abc123-FWD -i br-x ! -o br-x " + c + " -j ACCEPT",
		"BERTH-abc123-FWD -o br-x -m conntrack --ctstate RELATED,ESTABLISHED " + c + " -j ACCEPT",
		"BERTH-abc123-FWD -o br-x " + c + " -j DROP",
		"BERTH-abc123-IN -i br-x -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT " + c + " -j DROP",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("networkRules (-want +got):\n%s", diff)
	}
	n.Internal = true
	var drops int
	for _, r := range m.networkRules(n) {
		if r.spec[len(r.spec)-1] == "DROP" && r.chain == m.chains.fwd {
			drops++
			if !r.top {
				t.Errorf("internal DROP rule %q is appended; it must come first", r.spec)
			}
		}
		if r.spec[len(r.spec)-1] == "MASQUERADE" && r.spec[1] != "127.0.0.0/8" {
			t.Errorf("internal network masquerades: %q", r.spec)
		}
	}
	if drops != 2 {
		t.Errorf("internal network has %d DROP rules, want 2", drops)
	}

	ports := []PortMapping{
		{Proto: "tcp", HostPort: 8080, ContainerPort: 80},
		{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8081, ContainerPort: 80},
	}
	rs := m.portRules("c1", "br-x", netip.MustParseAddr("10.1.0.2"), ports)
	got = got[:0]
	for _, r := range rs {
		got = append(got, r.chain+" "+strings.Join(r.spec, " "))
	}
	pc := `-m comment --comment berth abc123 c1`
	want = []string{
		"BERTH-abc123-NAT -p tcp --dport 8080 ! -i br-x " + pc + " -j DNAT --to-destination 10.1.0.2:80",
		"BERTH-abc123-FWD -d 10.1.0.2/32 ! -i br-x -o br-x -p tcp --dport 80 " + pc + " -j ACCEPT",
		"BERTH-abc123-NAT -p tcp -d 127.0.0.1/32 --dport 8081 ! -i br-x " + pc + " -j DNAT --to-destination 10.1.0.2:80",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("portRules (-want +got), the shared FWD rule once:\n%s", diff)
	}
}
