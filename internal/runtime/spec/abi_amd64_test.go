package spec

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestDefaultProfileX32(t *testing.T) {
	for _, x32 := range []bool{true, false} {
		h := fakeHost()
		h.x32 = x32
		s, err := generate(opts(t, nil, &container.HostConfig{}), h)
		if err != nil {
			t.Fatal(err)
		}
		arches := s.Linux.Seccomp.Architectures
		if !slices.Contains(arches, specs.ArchX86_64) || !slices.Contains(arches, specs.ArchX86) {
			t.Errorf("x32=%v: architectures %v lack x86_64 or x86", x32, arches)
		}
		if slices.Contains(arches, specs.ArchX32) != x32 {
			t.Errorf("x32=%v: architectures %v", x32, arches)
		}
		// A profile the user gives keeps its architectures.
		s, err = generate(opts(t, nil, &container.HostConfig{SecurityOpt: []string{
			`seccomp={"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X32"]}`}}), h)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(s.Linux.Seccomp.Architectures, specs.ArchX32) {
			t.Errorf("x32=%v: user profile lost x32: %v", x32, s.Linux.Seccomp.Architectures)
		}
	}
}

func TestProbeX32(t *testing.T) {
	// The kernel's own build config is the independent answer: a kernel
	// built without CONFIG_X86_X32_ABI cannot run x32 programs.
	f, err := os.Open("/proc/config.gz")
	if err != nil {
		t.Skip("no /proc/config.gz to check the probe against")
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	config, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(config, []byte("# CONFIG_X86_X32_ABI is not set")) {
		t.Skip("kernel built with x32: whether it is on depends on the boot command line")
	}
	if probeX32() {
		t.Error("probeX32 = true on a kernel built without CONFIG_X86_X32_ABI")
	}
}
