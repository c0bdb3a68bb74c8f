package network

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Network namespaces. A thread's namespace is per thread, and Go moves
// goroutines between threads, so any work inside a namespace runs on a
// fresh goroutine locked to its thread. If that thread cannot be put back
// into the host's namespace, it is not unlocked: the goroutine exits
// locked and the Go runtime terminates the thread, so no other goroutine
// ever runs in a container's namespace by accident.

// nsfsMagic is the statfs type of a mounted network namespace.
const nsfsMagic = 0x6e736673

// isNetnsMount reports whether path is a bind-mounted namespace.
func isNetnsMount(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == nsfsMagic
}

// onThread runs fn on a new goroutine locked to its thread and waits for
// it. fn returns whether the thread is back in the host's namespace;
// if not, the thread is discarded.
func onThread(fn func() (restored bool, err error)) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored, err := fn()
		if restored {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// createNetns makes a new network namespace, bind-mounts it at path and
// brings its loopback up.
func createNetns(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return fmt.Errorf("creating mount point %s: %w", path, err)
	}
	f.Close()
	err = onThread(func() (bool, error) {
		orig, err := netns.Get()
		if err != nil {
			return true, fmt.Errorf("opening the host network namespace: %w", err)
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return true, fmt.Errorf("creating a network namespace: %w", err)
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		werr := unix.Mount(src, path, "none", unix.MS_BIND, "")
		if werr != nil {
			werr = fmt.Errorf("bind-mounting the network namespace at %s: %w", path, werr)
		} else {
			werr = loUp()
		}
		if err := netns.Set(orig); err != nil {
			return false, fmt.Errorf("returning to the host network namespace: %w", err)
		}
		return true, werr
	})
	if err != nil {
		_ = unmountNetns(path)
	}
	return err
}

// loUp brings up lo in the calling thread's namespace.
func loUp() error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("opening netlink in the network namespace: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("bringing lo up in the network namespace: %w", err)
	}
	return nil
}

// inNetns runs fn with its thread in the namespace mounted at path. fn
// must not start goroutines that expect to be in that namespace.
func inNetns(path string, fn func() error) error {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	defer target.Close()
	return onThread(func() (bool, error) {
		orig, err := netns.Get()
		if err != nil {
			return true, fmt.Errorf("opening the host network namespace: %w", err)
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			return true, fmt.Errorf("entering network namespace %s: %w", path, err)
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			return false, fmt.Errorf("returning to the host network namespace: %w", err)
		}
		return true, ferr
	})
}

// unmountNetns unmounts and removes a sandbox's mount point. Both being
// gone already is fine.
func unmountNetns(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	return nil
}

// vethSpec is what plugging an endpoint into a sandbox needs.
type vethSpec struct {
	hostIf, ifName string
	master         int // the bridge's index
	mtu            int
	ip             netip.Addr
	prefixLen      int
	mac            net.HardwareAddr
	gateway        netip.Addr // default route via it, unless the sandbox has one; invalid: none
}

// plugVeth creates the veth pair with its container end directly in the
// sandbox (so its ethN name never meets the host's), configures that end
// and brings both up. On error the pair is deleted.
func plugVeth(nsPath string, s vethSpec) (err error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	// A leftover from an attach a crash interrupted.
	if err := deleteLink(s.hostIf); err != nil {
		return err
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = s.hostIf
	attrs.MTU = s.mtu
	attrs.MasterIndex = s.master
	veth := netlink.NewVeth(attrs)
	veth.PeerName = s.ifName
	veth.PeerNamespace = netlink.NsFd(int(ns))
	veth.PeerHardwareAddr = s.mac
	veth.PeerMTU = uint32(s.mtu)
	if err := netlink.LinkAdd(veth); err != nil {
		_ = deleteLink(s.hostIf)
		return fmt.Errorf("creating veth %s: %w", s.hostIf, err)
	}
	defer func() {
		if err != nil {
			_ = deleteLink(s.hostIf)
		}
	}()
	host, err := netlink.LinkByName(s.hostIf)
	if err != nil {
		return fmt.Errorf("looking up veth %s: %w", s.hostIf, err)
	}
	if host.Attrs().MasterIndex != s.master {
		if err := netlink.LinkSetMasterByIndex(host, s.master); err != nil {
			return fmt.Errorf("adding veth %s to its bridge: %w", s.hostIf, err)
		}
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("bringing veth %s up: %w", s.hostIf, err)
	}
	return inNetns(nsPath, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("opening netlink in the network namespace: %w", err)
		}
		defer h.Close()
		link, err := h.LinkByName(s.ifName)
		if err != nil {
			return fmt.Errorf("looking up %s in the sandbox: %w", s.ifName, err)
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: s.ip.AsSlice(), Mask: net.CIDRMask(s.prefixLen, 32)}}
		if err := h.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("adding %s to %s: %w", addr.IPNet, s.ifName, err)
		}
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("bringing %s up: %w", s.ifName, err)
		}
		if s.gateway.IsValid() {
			return ensureDefaultRoute(h, link.Attrs().Index, s.gateway)
		}
		return nil
	})
}

// ensureDefaultRoute adds a default route via gw on link unless the
// namespace has one.
func ensureDefaultRoute(h *netlink.Handle, link int, gw netip.Addr) error {
	routes, err := dump(func() ([]netlink.Route, error) { return h.RouteList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("listing the sandbox's routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask) {
			return nil
		}
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: link, Gw: gw.AsSlice()}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("adding the default route via %s: %w", gw, err)
	}
	return nil
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

// defaultRouteVia gives a sandbox that has lost its default route (its
// endpoint detached) one via gw on ifName.
func defaultRouteVia(nsPath, ifName string, gw netip.Addr) error {
	return inNetns(nsPath, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("opening netlink in the network namespace: %w", err)
		}
		defer h.Close()
		link, err := h.LinkByName(ifName)
		if err != nil {
			return fmt.Errorf("looking up %s in the sandbox: %w", ifName, err)
		}
		return ensureDefaultRoute(h, link.Attrs().Index, gw)
	})
}
