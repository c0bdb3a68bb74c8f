package engine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// rootfsPath is where the container's root filesystem is mounted while it
// runs: the bundle's rootfs.
func (c *Container) rootfsPath() string { return filepath.Join(c.run, "rootfs") }

// mountRootfsLocked mounts overlayfs over the image layers with the
// container's own upper directory. A mount left by a crash is replaced.
func (e *Engine) mountRootfsLocked(c *Container) error {
	target := c.rootfsPath()
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	_ = unix.Unmount(target, unix.MNT_DETACH)
	if len(c.Layers) == 0 {
		return fmt.Errorf("container %s: image has no layers", shortID(c.ID))
	}
	lowers, err := e.o.Images.Layers.Lowers(c.Layers)
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("container %s: %w of its image (run 'berth system check')", shortID(c.ID), err)
	}
	if err != nil {
		return err
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lowers, ":"),
		filepath.Join(c.dir, "rw", "upper"), filepath.Join(c.dir, "rw", "work")) + e.overlayOpts
	if len(opts) >= unix.Getpagesize() {
		return fmt.Errorf("container %s: %d layers make overlay options longer than a page; not supported yet", shortID(c.ID), len(c.Layers))
	}
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting the root filesystem of %s: %w", shortID(c.ID), err)
	}
	return nil
}

// overlayDiffOptions turns off the overlay features that keep a change
// out of the upper directory (a renamed directory as a redirect xattr, a
// chmod as a metadata-only copy), where the kernel has them on: the upper
// directory must hold every change for diff, commit and build layers.
// Options the kernel does not know are never passed (a mount with one
// fails). Read once, in New: berth run's start is a hot path.
func overlayDiffOptions() string {
	var opts string
	for _, p := range []string{"redirect_dir", "metacopy"} {
		b, err := os.ReadFile("/sys/module/overlay/parameters/" + p)
		if err != nil {
			continue
		}
		if v := strings.TrimSpace(string(b)); v == "Y" || v == "on" {
			opts += "," + p + "=off"
		}
	}
	return opts
}

// unmountRootfs is idempotent: a missing or unmounted target is fine.
func unmountRootfs(c *Container) error {
	err := unix.Unmount(c.rootfsPath(), unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting the root filesystem of %s: %w", shortID(c.ID), err)
	}
	return nil
}

// writeEtcFilesLocked writes /etc/hostname, /etc/hosts and
// /etc/resolv.conf for the container (bind-mounted by the spec).
func (e *Engine) writeEtcFilesLocked(c *Container, ns netSetup) error {
	if ns.etcFrom != nil {
		// --network container:X: the spec mounts X's files.
		return nil
	}
	hostname := c.Config.Hostname
	if c.HostConfig.NetworkMode.IsHost() {
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		hostname = h
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
	if c.HostConfig.NetworkMode.IsHost() {
		if b, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts = string(b)
		}
	}
	hosts += etcHostsEntry(ns.hostIP, hostname)
	for _, h := range c.HostConfig.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("invalid --add-host %q: want NAME:IP", h)
		}
		if ip == "host-gateway" {
			gw, err := e.hostGateway()
			if err != nil {
				return fmt.Errorf("--add-host %s: %w", h, err)
			}
			ip = gw.String()
		}
		hosts += ip + "\t" + name + "\n"
	}
	var dns []string
	for _, a := range c.HostConfig.DNS {
		dns = append(dns, a.String())
	}
	if gw, ok := e.dnsServerFor(c); ok && len(dns) == 0 {
		dns = []string{gw.String()}
	}
	files := map[string][]byte{
		"hostname":    []byte(hostname + "\n"),
		"hosts":       []byte(hosts),
		"resolv.conf": resolvConf(c.HostConfig.NetworkMode.IsHost(), dns, c.HostConfig.DNSSearch, c.HostConfig.DNSOptions),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(c.dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// resolvConf derives the container's resolv.conf from the host's, as
// Docker does: loopback nameservers are useless in another network
// namespace and are dropped (Google's public resolvers replace an empty
// list, as in Docker), unless the container shares the host's network.
func resolvConf(hostNet bool, dns, search, options []string) []byte {
	host, _ := os.ReadFile("/etc/resolv.conf")
	var ns, other []string
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 && (hostNet || !(strings.HasPrefix(f[1], "127.") || f[1] == "::1")) {
				ns = append(ns, f[1])
			}
		case "search", "domain":
			if len(search) == 0 {
				other = append(other, line)
			}
		case "options":
			if len(options) == 0 {
				other = append(other, line)
			}
		}
	}
	if len(dns) > 0 {
		ns = dns
	} else if len(ns) == 0 {
		ns = []string{"8.8.8.8", "8.8.4.4"}
	}
	var b strings.Builder
	for _, n := range ns {
		b.WriteString("nameserver " + n + "\n")
	}
	if len(search) > 0 {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	if len(options) > 0 {
		b.WriteString("options " + strings.Join(options, " ") + "\n")
	}
	for _, l := range other {
		b.WriteString(l + "\n")
	}
	return []byte(b.String())
}
