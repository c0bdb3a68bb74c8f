package testutil

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BerthRegistry is a `berth registry serve` process on 127.0.0.1 with its
// own storage under t.TempDir(); it is killed in t.Cleanup.
type BerthRegistry struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// Root is its storage directory; Config its config file ("" for none).
	Root, Config string
	// Scheme is "http" or "https".
	Scheme string

	t    testing.TB
	bin  string
	args []string
	p    *process
}

// StartBerthRegistry starts bin's registry with the YAML config (may be
// empty) and extra flags, on a port the kernel picks unless extra has
// --addr.
func StartBerthRegistry(t testing.TB, bin, config string, extra ...string) *BerthRegistry {
	t.Helper()
	dir := t.TempDir()
	r := &BerthRegistry{Root: filepath.Join(dir, "storage"), t: t, bin: bin, Scheme: "http"}
	if config != "" {
		r.Config = filepath.Join(dir, "registry.yaml")
		if err := os.WriteFile(r.Config, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := "127.0.0.1:0"
	for i := 0; i < len(extra); i++ {
		if extra[i] == "--addr" && i+1 < len(extra) {
			addr = extra[i+1]
			extra = append(extra[:i:i], extra[i+2:]...)
			break
		}
	}
	r.args = append([]string{"registry", "serve", "--root", r.Root}, extra...)
	if r.Config != "" {
		r.args = append(r.args, "--config", r.Config)
	}
	for _, a := range extra {
		if a == "--tls-cert" {
			r.Scheme = "https"
		}
	}
	r.start(addr)
	t.Cleanup(func() {
		if r.p != nil {
			r.p.stop()
		}
	})
	return r
}

// URL is the registry's base URL.
func (r *BerthRegistry) URL() string { return r.Scheme + "://" + r.Addr }

func (r *BerthRegistry) start(addr string) {
	r.t.Helper()
	cmd := exec.Command(r.bin, append(r.args, "--addr", addr)...)
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	out := new(syncBuffer)
	cmd.Stderr = out
	p := &process{cmd: cmd, out: out, done: make(chan struct{})}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start berth registry: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "berth registry listening on "); ok {
				ready <- a
			}
		}
		close(ready)
	}()
	select {
	case a, ok := <-ready:
		if !ok {
			<-p.done
			r.t.Fatalf("berth registry exited: %v\n%s", p.err, out.String())
		}
		r.Addr = a
	case <-time.After(20 * time.Second):
		p.stop()
		r.t.Fatalf("berth registry did not start:\n%s", out.String())
	}
	r.p = p
}

// Log is the registry's stderr (access and error logs).
func (r *BerthRegistry) Log() string { return r.p.out.String() }

// Kill9 kills the registry at once, as a crash would.
func (r *BerthRegistry) Kill9() {
	_ = r.p.cmd.Process.Signal(syscall.SIGKILL)
	<-r.p.done
}

// Restart starts the registry again on the same root and address.
func (r *BerthRegistry) Restart() {
	r.t.Helper()
	r.start(r.Addr)
}

// Run runs another berth registry subcommand (gc) on the same storage.
func (r *BerthRegistry) Run(args ...string) (string, error) {
	a := append([]string{"registry"}, args...)
	a = append(a, "--root", r.Root)
	if r.Config != "" {
		a = append(a, "--config", r.Config)
	}
	out, err := exec.Command(r.bin, a...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("berth %s: %w\n%s", strings.Join(a, " "), err, out)
	}
	return string(out), nil
}
