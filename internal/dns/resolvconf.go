package dns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
)

// readResolvConf returns the nameservers in the resolv.conf at path. A
// missing file yields none rather than an error: the host then has no
// resolvers to forward to, and forwarded names get SERVFAIL, but container
// names still resolve.
func readResolvConf(path string) ([]netip.AddrPort, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read upstream resolvers: %w", err)
	}
	defer f.Close()
	ups, err := parseResolvConf(f)
	if err != nil {
		return nil, fmt.Errorf("read upstream resolvers from %s: %w", path, err)
	}
	return ups, nil
}

// parseResolvConf returns the addresses of the "nameserver" lines, on port
// 53, in file order. Like glibc it ignores lines it does not understand and
// comments starting with '#' or ';'; an IPv6 address may carry a zone.
func parseResolvConf(r io.Reader) ([]netip.AddrPort, error) {
	var ups []netip.AddrPort
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line, _, _ = strings.Cut(line, ";")
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		ups = append(ups, netip.AddrPortFrom(a.Unmap(), 53))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ups, nil
}
