// Package cli holds berth's command line: one cobra command per verb, each
// filling an options struct and calling one library function. It is the
// only package that imports cobra, and it prints; the libraries it calls
// never do.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/errdefs"
)

// Version is set at build time with -ldflags "-X .../cli.Version=...".
var Version = "dev"

// globals are the flags every command shares, and the daemon connection.
type globals struct {
	root       string
	configPath string
	logLevel   string
	host       string
	rootSet    bool // --root given explicitly: the daemon must use it

	stdin          io.Reader
	stdout, stderr io.Writer

	api *client.Client
}

// usageError marks errors in how a command was called (exit status 125, as
// Docker's CLI uses for its own errors).
type usageError struct{ error }

// Main runs the CLI with args and returns the exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if g.api != nil {
		g.api.Close()
	}
	if err == nil {
		return 0
	}
	var se statusError
	if errors.As(err, &se) {
		if se.msg != "" {
			fmt.Fprintln(stderr, "berth: "+se.msg)
		}
		return se.code
	}
	// Every daemon answer comes from berth's own daemon, whose messages
	// already say what failed: the client's prefix adds nothing.
	msg := strings.TrimPrefix(err.Error(), "Error response from daemon: ")
	fmt.Fprintln(stderr, "berth: "+strings.ReplaceAll(msg, "\n", " "))
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		if cmd != nil {
			fmt.Fprintf(stderr, "See '%s --help'.\n", cmd.CommandPath())
		}
		return 125
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return errdefs.ExitCode(err)
}

// exitError is a failure with a given exit status and a message (run's 125,
// 126 and 127).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// statusError ends a command with a given status, e.g. system check's 1
// after it has printed its findings.
type statusError struct {
	code int
	msg  string
}

func (s statusError) Error() string { return s.msg }

// isCobraUsage recognizes cobra's "unknown command" error, the one usage
// error cobra returns untyped (flag errors pass through SetFlagErrorFunc).
func isCobraUsage(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command")
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "berth [OPTIONS] COMMAND",
		Short: "A complete container platform in one binary",
		Long: `berth pulls, pushes, stores and runs OCI container images.

The CLI is a client of the berth daemon's Docker Engine API: -H or
BERTH_HOST names the daemon (default ` + DefaultHost + `). When no
daemon answers on the default socket, the CLI starts one itself.
Its commands and flags follow Docker's, so habits carry over.`,
		Example: `  berth run --rm busybox echo hello
  berth pull busybox
  berth -H unix:///tmp/berth.sock ps -a`,
		SilenceUsage:     true,
		SilenceErrors:    true,
		TraverseChildren: true,
		// With TraverseChildren cobra no longer reports unknown commands
		// itself.
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], "berth")}
			}
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			g.rootSet = cmd.Flags().Changed("root") || os.Getenv("BERTH_ROOT") != ""
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)}
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: lvl})))
			return nil
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	// --version and -v print one line, as docker's do; `berth version`
	// asks the daemon too.
	root.Version = Version
	root.SetVersionTemplate("berth version {{.Version}}\n")
	root.Flags().BoolP("version", "v", false, "Print version information and quit")
	f := root.PersistentFlags()
	f.StringVar(&g.root, "root", envOr("BERTH_ROOT", "/var/lib/berth"), "Root directory of persistent berth state (env BERTH_ROOT)")
	f.StringVar(&g.configPath, "config", envOr("BERTH_CONFIG", config.DefaultPath), "Path of berth's config file (env BERTH_CONFIG)")
	// -l and -H are flags of the root command only (given before the
	// command, as with docker), so that run keeps -l (label) and history
	// -H (human).
	root.Flags().StringVarP(&g.logLevel, "log-level", "l", "warn", "Log level: debug, info, warn, error")
	root.Flags().StringVarP(&g.host, "host", "H", "", "Daemon socket to connect to (env BERTH_HOST; default "+DefaultHost+")")

	root.AddCommand(
		newVersion(g), newInfo(g), newDaemon(g), newEvents(g),
		newPull(g), newPush(g), newImages(g), newTag(g), newRmi(g), newHistory(g),
		newSave(g), newLoad(g), newImport(g), newInspectAny(g),
		newLogin(g), newLogout(g),
		newImageCmd(g), newSystemCmd(g), newVolumeCmd(g), newNetworkCmd(g), newContainerCmd(g),
		newBuild(g), newBuilderCmd(g), newRegistryCmd(g),
	)
	root.AddCommand(containerCommands(g)...)
	// Usage lines say [OPTIONS] as Docker's do; cobra would add "[flags]".
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.DisableFlagsInUseLine = true
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return root
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// exactArgs is cobra.ExactArgs with Docker's wording and a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%q requires exactly %d argument(s)", cmd.CommandPath(), n)}
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usageError{fmt.Errorf("%q requires at least %d argument(s)", cmd.CommandPath(), n)}
		}
		return nil
	}
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usageError{fmt.Errorf("%q requires between %d and %d arguments", cmd.CommandPath(), lo, hi)}
		}
		return nil
	}
}
