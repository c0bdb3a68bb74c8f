package network

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"

	"github.com/berth-dev/berth/internal/errdefs"
)

// systemRoot is the daemon's default network state directory; only the
// daemon using it gets the short, Docker-like default bridge name.
const systemRoot = "/var/lib/berth/network"

// vethPrefix starts the host-side name of every veth berth makes, so that
// Reconcile can tell its own leftovers from other interfaces.
const vethPrefix = "vb"

// maxIfName is the kernel's interface name limit (IFNAMSIZ - 1).
const maxIfName = 15

// maxChainName is iptables' chain name limit.
const maxChainName = 28

// validName is Docker's rule for network names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// validContainerID keeps container IDs usable as file names: they name
// state files and netns mounts.
var validContainerID = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// reservedNames are Docker's predefined networks, which users cannot
// create.
var reservedNames = map[string]bool{"bridge": true, "host": true, "none": true}

// checkName validates a user network's name.
func checkName(name string) error {
	if name == "" {
		return errdefs.Invalidf("network name must not be empty")
	}
	if !validName.MatchString(name) {
		return errdefs.Invalidf("invalid network name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, starting with a letter or digit", name)
	}
	if reservedNames[name] {
		return errdefs.PermissionDenied(fmt.Errorf("%s is a pre-defined network and cannot be created", name))
	}
	return nil
}

// checkContainerID refuses IDs that could escape the state directories.
func checkContainerID(id string) error {
	if id == "" || id == "." || id == ".." || !validContainerID.MatchString(id) {
		return errdefs.Invalidf("invalid container ID %q", id)
	}
	return nil
}

// hashHex is the hex sha256 of s.
func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// rootTag is the per-Root tag in berth's iptables chain names and rule
// comments: it keeps the rules of daemons sharing a host apart.
func rootTag(root string) string { return hashHex(root)[:6] }

// chainSet names a Manager's iptables chains.
type chainSet struct {
	fwd  string // filter: forwarding to and from its bridges
	iso  string // filter: isolation, no forwarding between its bridges
	in   string // filter INPUT: no loopback-addressed packets from bridges
	nat  string // nat: DNAT of published ports
	post string // nat: masquerading
}

func chainsFor(tag string) chainSet {
	p := "BERTH-" + tag
	return chainSet{fwd: p + "-FWD", iso: p + "-ISO", in: p + "-IN", nat: p + "-NAT", post: p + "-POST"}
}

// all lists the chains with their tables, in the order they can be
// deleted (FWD jumps to ISO, so it goes first).
func (c chainSet) all() [][2]string {
	return [][2]string{{tableFilter, c.fwd}, {tableFilter, c.iso}, {tableFilter, c.in}, {tableNAT, c.nat}, {tableNAT, c.post}}
}

// defaultBridgeName is the default network's bridge when Config leaves it
// empty: berth0 for the system daemon, a name unique per Root otherwise.
func defaultBridgeName(root string) string {
	if root == systemRoot {
		return "berth0"
	}
	return "bt" + hashHex(root)[:8]
}

// userBridgeName is the bridge of a user-defined network, as Docker names
// it.
func userBridgeName(id string) string { return "br-" + id[:12] }

// vethName is the host side of a container's endpoint on a network. It is
// derived, not random, so that an Attach retried after a crash finds (and
// replaces) the veth the first try left, and Reconcile can name it.
func vethName(root, containerID, networkID string) string {
	return vethPrefix + hashHex(root + "\x00" + containerID + "\x00" + networkID)[:10]
}

// macFor derives an endpoint's MAC from its IPv4 address as Docker does:
// 02:42 (locally administered) followed by the address.
func macFor(ip netip.Addr) string {
	b := ip.As4()
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// newID is a random 64-hex network ID.
func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}
