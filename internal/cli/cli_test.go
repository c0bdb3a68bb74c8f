package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasHelp: a usage line, a short description and an
// example for every command, as the project promises.
func TestEveryCommandHasHelp(t *testing.T) {
	root := newRoot(&globals{})
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		n++
		if c.Use == "" || c.Short == "" {
			t.Errorf("%s: missing Use or Short", c.CommandPath())
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: no example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if n < 20 {
		t.Fatalf("walked only %d commands", n)
	}
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func TestUsageErrors(t *testing.T) {
	root := t.TempDir()
	// No daemon answers here, and an explicit host is never auto-started.
	t.Setenv("BERTH_HOST", "unix://"+root+"/none.sock")
	tests := []struct {
		args    []string
		code    int
		mention string
	}{
		{[]string{"--root", root, "pull"}, 125, `requires exactly 1 argument`},
		{[]string{"--root", root, "nosuch"}, 125, `unknown command`},
		{[]string{"--root", root, "images", "--bogus"}, 125, `unknown flag`},
		{[]string{"--root", root, "pull", "Bad/Name"}, 1, `must be lowercase`},
		{[]string{"--root", root, "pull", "--platform", "a/b/c/d", "x"}, 125, `want os/arch`},
		{[]string{"--root", root, "rmi", "nothere"}, 1, `cannot connect to the berth daemon at unix://` + root + `/none.sock`},
		{[]string{"--root", root, "run", "-p", "80:x", "busybox"}, 125, `--publish "80:x": invalid containerPort: x`},
		{[]string{"--root", root, "run", "--add-host", "db", "busybox"}, 125, `bad format for add-host: "db"`},
		{[]string{"--root", root, "network", "create", "--subnet", "10.0.0.0", "app"}, 125, `--subnet "10.0.0.0"`},
		{[]string{"--root", root, "network", "create", "--gateway", "10.0.0.1", "app"}, 125, `every ip-range or gateway must have a corresponding subnet`},
		{[]string{"--root", root, "network", "ls", "--filter", "bogus=1"}, 125, `invalid filter "bogus"`},
		{[]string{"--root", root, "network", "connect", "app"}, 125, `requires exactly 2 argument`},
		{[]string{"--root", root, "port"}, 125, `requires between 1 and 2 arguments`},
		{[]string{"--root", root, "run", "--restart", "sometimes", "busybox"}, 125, `--restart "sometimes"`},
		{[]string{"--root", root, "run", "-m", "lots", "busybox"}, 125, `--memory "lots"`},
		{[]string{"--root", root, "images", "--filter", "bogus=1"}, 125, `invalid filter "bogus"`},
		{[]string{"--root", root, "--log-level", "loud", "images"}, 125, `--log-level`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[2:], " "), func(t *testing.T) {
			_, stderr, code := run(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.mention) {
				t.Errorf("stderr %q does not mention %q", stderr, tt.mention)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "berth version ") {
		t.Fatalf("version = %q, exit %d", out, code)
	}
	// --version and -v answer without a daemon, in one line.
	for _, flag := range []string{"--version", "-v"} {
		out, _, code := run(t, flag)
		if code != 0 || out != "berth version "+Version+"\n" {
			t.Errorf("%s = %q, exit %d", flag, out, code)
		}
	}
}

func TestRegistryHost(t *testing.T) {
	for in, want := range map[string]string{
		"https://index.docker.io/v1/": "docker.io",
		"localhost:5000":              "localhost:5000",
		"ghcr.io/org/img":             "ghcr.io",
		"http://127.0.0.1:5000/":      "127.0.0.1:5000",
	} {
		if got := registryHost(in); got != want {
			t.Errorf("registryHost(%q) = %q, want %q", in, got, want)
		}
	}
}
