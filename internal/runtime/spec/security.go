package spec

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

// securityOpts is the parsed --security-opt list.
type securityOpts struct {
	noNewPrivileges bool
	// seccomp is "" (the default profile), "unconfined", or a profile:
	// its JSON, or for berth's CLI the path of a JSON file.
	seccomp string
	// unconfinedPaths is systempaths=unconfined: no masked or read-only paths.
	unconfinedPaths bool
	// writableCgroups is writable-cgroups=true: /sys/fs/cgroup mounted rw.
	writableCgroups *bool
}

// parseSecurityOpts reads Docker's --security-opt values, "key=value" or
// the legacy "key:value". apparmor= and label= are accepted and ignored:
// berth has no AppArmor or SELinux support.
func parseSecurityOpts(opts []string) (securityOpts, error) {
	var s securityOpts
	for _, opt := range opts {
		if opt == "no-new-privileges" {
			s.noNewPrivileges = true
			continue
		}
		if opt == "label:disable" || opt == "label=disable" {
			continue
		}
		k, v, ok := strings.Cut(opt, "=")
		if !ok {
			k, v, ok = strings.Cut(opt, ":")
		}
		if !ok {
			return s, errdefs.Invalidf("--security-opt %q: want key=value", opt)
		}
		switch k {
		case "no-new-privileges":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return s, errdefs.Invalidf("--security-opt %q: invalid boolean", opt)
			}
			s.noNewPrivileges = b
		case "seccomp":
			if v == "" {
				return s, errdefs.Invalidf("--security-opt %q: empty seccomp profile", opt)
			}
			s.seccomp = v
		case "systempaths":
			if v != "unconfined" {
				return s, errdefs.Invalidf("--security-opt %q: only systempaths=unconfined is supported", opt)
			}
			s.unconfinedPaths = true
		case "writable-cgroups":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return s, errdefs.Invalidf("--security-opt %q: invalid boolean", opt)
			}
			s.writableCgroups = &b
		case "apparmor", "label":
			// Accepted for compatibility; berth applies no LSM profile.
		default:
			return s, errdefs.Invalidf("--security-opt %q: unknown option", opt)
		}
	}
	return s, nil
}

// seccompProfile picks the container's seccomp filter as Docker does:
// Docker's default profile, adjusted to the spec's capabilities and
// architecture; none for seccomp=unconfined or --privileged without an
// explicit profile; otherwise the given profile. Docker's CLI reads a
// profile file itself and sends its JSON, so a value starting with "{" is
// JSON and anything else a file path (berth's CLI may send either).
//
// On a kernel without the x32 ABI the default profile leaves out its x32
// section: no x32 program can run there anyway (the filter now kills one
// where the kernel would have said ENOSYS), and libseccomp compiles the
// profile in each container's init in about half the time (20 ms to 10 ms
// here). A profile the user gives is used as written.
func seccompProfile(s *specs.Spec, hc *container.HostConfig, sec securityOpts, h host) (*specs.LinuxSeccomp, error) {
	switch {
	case sec.seccomp == "unconfined":
		return nil, nil
	case sec.seccomp == "" && hc.Privileged:
		return nil, nil
	case sec.seccomp == "" || sec.seccomp == "builtin":
		p, err := seccomp.GetDefaultProfile(s)
		if err != nil {
			return nil, fmt.Errorf("building default seccomp profile: %w", err)
		}
		if !h.x32 {
			p.Architectures = slices.DeleteFunc(p.Architectures, func(a specs.Arch) bool { return a == specs.ArchX32 })
		}
		return p, nil
	}
	body, name := sec.seccomp, "profile"
	if !strings.HasPrefix(strings.TrimSpace(body), "{") {
		name = body
		b, err := os.ReadFile(body)
		if err != nil {
			return nil, errdefs.Invalidf("--security-opt seccomp=%s: reading profile: %w", body, err)
		}
		body = string(b)
	}
	p, err := seccomp.LoadProfile(body, s)
	if err != nil {
		return nil, errdefs.Invalidf("--security-opt seccomp: loading %s: %w", name, err)
	}
	return p, nil
}
