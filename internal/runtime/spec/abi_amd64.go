package spec

import (
	"bytes"
	"os"

	"golang.org/x/sys/unix"
)

// x32Syscall is the bit that marks a syscall number as x32 ABI.
const x32Syscall = 0x40000000

// probeX32 reports whether the kernel runs x32 ABI programs. Most kernels
// are built without it (CONFIG_X86_X32_ABI) or boot with it off; then a
// seccomp filter needs no x32 section, and leaving it out halves the time
// libseccomp takes to compile Docker's profile in every container's init.
//
// The probe is an x32 getpid: ENOSYS means no x32. It is made only when
// this process runs under no seccomp filter of its own, because a filter
// such as systemd's SystemCallArchitectures=native kills the caller of a
// foreign-ABI syscall. Under a filter, x32 is assumed present (the safe
// answer: the profile keeps its x32 section).
func probeX32() bool {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil || !bytes.Contains(status, []byte("\nSeccomp:\t0\n")) {
		return true
	}
	_, _, errno := unix.RawSyscall(x32Syscall|unix.SYS_GETPID, 0, 0, 0)
	return errno != unix.ENOSYS
}
