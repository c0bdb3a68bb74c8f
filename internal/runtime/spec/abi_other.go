//go:build !amd64

package spec

// probeX32 reports whether the kernel runs x32 ABI programs: only amd64
// kernels can, and only amd64 profiles name SCMP_ARCH_X32.
func probeX32() bool { return false }
