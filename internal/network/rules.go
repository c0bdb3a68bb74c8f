package network

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// iptables layout of one Manager (tag = rootTag(Root)):
//
//	filter FORWARD     -> BERTH-<tag>-FWD   (position 1)
//	BERTH-<tag>-FWD    -> BERTH-<tag>-ISO   (-i BR ! -o BR, per network:
//	                                         ISO drops -o <each bridge>,
//	                                         so networks are isolated
//	                                         from each other, as Docker's)
//	nat PREROUTING     -> BERTH-<tag>-NAT   (-m addrtype --dst-type LOCAL)
//	nat OUTPUT         -> BERTH-<tag>-NAT   (-m addrtype --dst-type LOCAL)
//	nat POSTROUTING    -> BERTH-<tag>-POST
//
// Every rule carries the comment "berth <tag> <owner>", the owner being a
// network ID or a container ID ("berth <tag>" alone on the jumps), so that
// a listing of the chains tells which rules are stale after a crash.

const (
	tableFilter = "filter"
	tableNAT    = "nat"
)

// rule is one iptables rule of berth's.
type rule struct {
	table, chain string
	spec         []string
	// top inserts the rule at position 1 instead of appending it: the
	// DROPs of internal networks must come before other networks'
	// ACCEPTs, and the FORWARD jump before whatever else the host has.
	top bool
}

func (r rule) key() string { return r.table + " " + r.chain + " " + strings.Join(r.spec, " ") }

func (m *Manager) comment(owner string) []string {
	c := "berth " + m.tag
	if owner != "" {
		c += " " + owner
	}
	return []string{"-m", "comment", "--comment", c}
}

func (m *Manager) jumpRules() []rule {
	c := m.comment("")
	local := []string{"-m", "addrtype", "--dst-type", "LOCAL"}
	return []rule{
		{table: tableFilter, chain: "FORWARD", spec: cat(c, []string{"-j", m.chains.fwd}), top: true},
		{table: tableFilter, chain: "INPUT", spec: cat(c, []string{"-j", m.chains.in}), top: true},
		{table: tableNAT, chain: "PREROUTING", spec: cat(local, c, []string{"-j", m.chains.nat})},
		{table: tableNAT, chain: "OUTPUT", spec: cat(local, c, []string{"-j", m.chains.nat})},
		{table: tableNAT, chain: "POSTROUTING", spec: cat(c, []string{"-j", m.chains.post})},
	}
}

// networkRules are a network's forwarding and masquerading rules.
func (m *Manager) networkRules(n *Network) []rule {
	c := m.comment(n.ID)
	br := n.Bridge
	// The comment goes before the target, the last two arguments.
	post := func(s ...string) rule {
		return rule{table: tableNAT, chain: m.chains.post, spec: cat(s[:len(s)-2], c, s[len(s)-2:])}
	}
	fwd := func(s ...string) rule {
		return rule{table: tableFilter, chain: m.chains.fwd, spec: cat(s[:len(s)-2], c, s[len(s)-2:])}
	}
	var rs []rule
	if !n.Internal {
		rs = append(rs, post("-s", n.Subnet.String(), "!", "-o", br, "-j", "MASQUERADE"))
	}
	// Published ports reached through 127.0.0.1 (route_localnet): the
	// container must see a source it can answer.
	rs = append(rs, post("-s", "127.0.0.0/8", "-o", br, "-j", "MASQUERADE"))
	rs = append(rs, fwd("-i", br, "-o", br, "-j", "ACCEPT"))
	// Isolation: traffic leaving this bridge for another of this
	// Manager's bridges is dropped in ISO (each network adds its bridge
	// there); anything else returns and is accepted below.
	toISO := fwd("-i", br, "!", "-o", br, "-j", m.chains.iso)
	toISO.top = true
	rs = append(rs, toISO, rule{table: tableFilter, chain: m.chains.iso, spec: cat([]string{"-o", br}, c, []string{"-j", "DROP"})})
	if n.Internal {
		drop1 := fwd("-i", br, "!", "-o", br, "-j", "DROP")
		drop2 := fwd("!", "-i", br, "-o", br, "-j", "DROP")
		drop1.top, drop2.top = true, true
		rs = append(rs, drop1, drop2)
	} else {
		rs = append(rs,
			fwd("-i", br, "!", "-o", br, "-j", "ACCEPT"),
			fwd("-o", br, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"),
			// Nothing else enters the bridge from outside: ip_forward is
			// on, and the host's FORWARD policy may be ACCEPT (Docker
			// sets DROP for this). Published ports' accepts come first.
			fwd("-o", br, "-j", "DROP"))
	}
	// route_localnet lets the host reach published ports on 127.0.0.1;
	// without this drop it would also let a container send packets to
	// the host's loopback-only services (CVE-2020-8558).
	rs = append(rs, rule{table: tableFilter, chain: m.chains.in, spec: cat(
		[]string{"-i", br, "-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT"},
		c, []string{"-j", "DROP"})})
	return rs
}

// portRules are the DNAT and forwarding rules of a container's published
// ports towards ip on bridge br, without duplicates.
func (m *Manager) portRules(containerID, br string, ip netip.Addr, ports []PortMapping) []rule {
	c := m.comment(containerID)
	var rs []rule
	seen := map[string]bool{}
	add := func(r rule) {
		if !seen[r.key()] {
			seen[r.key()] = true
			rs = append(rs, r)
		}
	}
	for _, p := range ports {
		spec := []string{"-p", p.Proto}
		if p.HostIP.IsValid() {
			spec = append(spec, "-d", p.HostIP.String()+"/32")
		}
		spec = append(spec, "--dport", strconv.Itoa(int(p.HostPort)), "!", "-i", br)
		spec = cat(spec, c, []string{"-j", "DNAT", "--to-destination", netip.AddrPortFrom(ip, p.ContainerPort).String()})
		add(rule{table: tableNAT, chain: m.chains.nat, spec: spec})
		add(rule{table: tableFilter, chain: m.chains.fwd, top: true, spec: cat(
			[]string{"-d", ip.String() + "/32", "!", "-i", br, "-o", br, "-p", p.Proto, "--dport", strconv.Itoa(int(p.ContainerPort))},
			c, []string{"-j", "ACCEPT"})})
	}
	return rs
}

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ensureChains creates the Manager's chains and the jumps to them.
func (m *Manager) ensureChains() error {
	for _, tc := range m.chains.all() {
		ok, err := m.ipt.ChainExists(tc[0], tc[1])
		if err != nil {
			return fmt.Errorf("checking iptables chain %s: %w", tc[1], err)
		}
		if !ok {
			if err := m.ipt.NewChain(tc[0], tc[1]); err != nil {
				return fmt.Errorf("creating iptables chain %s: %w", tc[1], err)
			}
		}
	}
	return m.ensureRules(m.jumpRules())
}

// deleteChains removes the jumps and the Manager's chains with their rules.
func (m *Manager) deleteChains() error {
	var errs []error
	exists := map[string]bool{}
	for _, tc := range m.chains.all() {
		ok, err := m.ipt.ChainExists(tc[0], tc[1])
		if err != nil {
			errs = append(errs, fmt.Errorf("checking iptables chain %s: %w", tc[1], err))
		}
		exists[tc[1]] = ok
	}
	for _, r := range m.jumpRules() {
		// A jump to a missing chain cannot exist, and checking for one
		// fails ("Couldn't load target").
		if !exists[r.spec[len(r.spec)-1]] {
			continue
		}
		if err := m.ipt.DeleteIfExists(r.table, r.chain, r.spec...); err != nil {
			errs = append(errs, fmt.Errorf("deleting iptables jump from %s: %w", r.chain, err))
		}
	}
	for _, tc := range m.chains.all() {
		if !exists[tc[1]] {
			continue
		}
		if err := m.ipt.ClearAndDeleteChain(tc[0], tc[1]); err != nil {
			errs = append(errs, fmt.Errorf("deleting iptables chain %s: %w", tc[1], err))
		}
	}
	return joinErrors(errs)
}

// ensureRules installs the rules that are missing.
func (m *Manager) ensureRules(rs []rule) error {
	for _, r := range rs {
		ok, err := m.ipt.Exists(r.table, r.chain, r.spec...)
		if err != nil {
			return fmt.Errorf("checking iptables rule in %s: %w", r.chain, err)
		}
		if ok {
			continue
		}
		if r.top {
			err = m.ipt.Insert(r.table, r.chain, 1, r.spec...)
		} else {
			err = m.ipt.Append(r.table, r.chain, r.spec...)
		}
		if err != nil {
			return fmt.Errorf("adding iptables rule to %s: %w", r.chain, err)
		}
	}
	return nil
}

// deleteRules removes the rules that exist.
func (m *Manager) deleteRules(rs []rule) error {
	var errs []error
	missing := map[string]bool{}
	for _, r := range rs {
		// A jump to one of berth's chains that is gone cannot exist, and
		// iptables fails to check for one ("Chain ... does not exist").
		if target := r.spec[len(r.spec)-1]; strings.HasPrefix(target, "BERTH-") {
			if _, seen := missing[target]; !seen {
				ok, err := m.ipt.ChainExists(r.table, target)
				missing[target] = err == nil && !ok
			}
			if missing[target] {
				continue
			}
		}
		if err := m.ipt.DeleteIfExists(r.table, r.chain, r.spec...); err != nil {
			errs = append(errs, fmt.Errorf("deleting iptables rule from %s: %w", r.chain, err))
		}
	}
	return joinErrors(errs)
}

// listedRules reads the Manager's chains back, grouped by the owner in
// their comment ("" for rules without one of berth's comments).
func (m *Manager) listedRules() (map[string][]rule, error) {
	out := map[string][]rule{}
	for _, tc := range m.chains.all() {
		ok, err := m.ipt.ChainExists(tc[0], tc[1])
		if err != nil {
			return nil, fmt.Errorf("checking iptables chain %s: %w", tc[1], err)
		}
		if !ok {
			continue
		}
		lines, err := m.ipt.List(tc[0], tc[1])
		if err != nil {
			return nil, fmt.Errorf("listing iptables chain %s: %w", tc[1], err)
		}
		for _, l := range lines {
			args := splitRule(l)
			if len(args) < 3 || args[0] != "-A" || args[1] != tc[1] {
				continue
			}
			r := rule{table: tc[0], chain: tc[1], spec: args[2:]}
			owner := ""
			if c, ok := flagValue(r.spec, "--comment"); ok {
				if f := strings.Fields(c); len(f) == 3 && f[0] == "berth" && f[1] == m.tag {
					owner = f[2]
				}
			}
			out[owner] = append(out[owner], r)
		}
	}
	return out, nil
}

// deleteOwned removes every rule in the Manager's chains whose comment
// names owner, whatever state says: the rules a crash left are found too.
func (m *Manager) deleteOwned(owner string) error {
	listed, err := m.listedRules()
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range listed[owner] {
		if err := m.ipt.Delete(r.table, r.chain, r.spec...); err != nil {
			errs = append(errs, fmt.Errorf("deleting iptables rule from %s: %w", r.chain, err))
		}
	}
	return joinErrors(errs)
}

// natChainName matches the DNAT chain of any berth daemon on the host.
var natChainName = regexp.MustCompile(`^BERTH-[0-9a-f]{6}-NAT$`)

// usedPort is a host port some berth daemon's DNAT rule takes.
type usedPort struct {
	proto  string
	hostIP netip.Addr // invalid: every address
	port   uint16
	owner  string // the rule's comment
}

// publishedPorts lists the host ports published by every berth daemon on
// this host, read from their DNAT chains.
func publishedPorts(ipt *iptables.IPTables) ([]usedPort, error) {
	chains, err := ipt.ListChains(tableNAT)
	if err != nil {
		return nil, fmt.Errorf("listing nat chains: %w", err)
	}
	var out []usedPort
	for _, ch := range chains {
		if !natChainName.MatchString(ch) {
			continue
		}
		lines, err := ipt.List(tableNAT, ch)
		if err != nil {
			// Another daemon removed its chain meanwhile.
			if e, ok := err.(*iptables.Error); ok && e.IsNotExist() {
				continue
			}
			return nil, fmt.Errorf("listing iptables chain %s: %w", ch, err)
		}
		for _, l := range lines {
			if u, ok := parseDNAT(splitRule(l)); ok {
				out = append(out, u)
			}
		}
	}
	return out, nil
}

// parseDNAT reads the published port out of a DNAT rule in -S form.
func parseDNAT(args []string) (usedPort, bool) {
	if j, _ := flagValue(args, "-j"); j != "DNAT" {
		return usedPort{}, false
	}
	var u usedPort
	u.proto, _ = flagValue(args, "-p")
	dport, ok := flagValue(args, "--dport")
	if !ok {
		return usedPort{}, false
	}
	n, err := strconv.ParseUint(dport, 10, 16)
	if err != nil {
		return usedPort{}, false
	}
	u.port = uint16(n)
	if d, ok := flagValue(args, "-d"); ok {
		if p, err := netip.ParsePrefix(d); err == nil {
			u.hostIP = p.Addr()
		} else if a, err := netip.ParseAddr(d); err == nil {
			u.hostIP = a
		}
	}
	u.owner, _ = flagValue(args, "--comment")
	return u, true
}

// flagValue is the argument after the first occurrence of flag.
func flagValue(args []string, flag string) (string, bool) {
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		return "", false
	}
	return args[i+1], true
}

// splitRule splits a line of `iptables -S` into arguments, honouring the
// double quotes (and backslash escapes in them) iptables puts around
// comments.
func splitRule(line string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (c == ' ' || c == '\t'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// joinErrors joins errors on one line, keeping each for errors.Is.
func joinErrors(errs []error) error {
	var out error
	for _, e := range errs {
		if e == nil {
			continue
		}
		if out == nil {
			out = e
		} else {
			out = fmt.Errorf("%w; %w", out, e)
		}
	}
	return out
}
