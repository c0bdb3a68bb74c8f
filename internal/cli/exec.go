package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/atomicfile"
)

func stdcopyStreams(stdout, stderr io.Writer, r io.Reader) (int64, error) {
	return stdcopy.StdCopy(stdout, stderr, r)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 10, 1, 3, ' ', 0) }

// writeOutput copies r to the file named by output (atomically), or to
// stdout when output is "" or "-".
func writeOutput(cmd *cobra.Command, output string, r io.Reader) error {
	if output == "" || output == "-" {
		_, err := io.Copy(cmd.OutOrStdout(), r)
		return err
	}
	return atomicfile.WriteWith(output, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

func newExec(g *globals) *cobra.Command {
	var o struct {
		interactive, tty, detach, privileged bool
		user, workdir, detachKeys            string
		env, envFiles                        []string
	}
	c := &cobra.Command{
		Use:     "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short:   "Execute a command in a running container",
		Example: "  berth exec web ls /\n  berth exec -it web sh\n  berth exec -e MODE=debug -w /tmp web env",
		Args:    minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := readKVFiles(o.envFiles, "--env-file")
			if err != nil {
				return usageError{err}
			}
			ctx := context.WithoutCancel(cmd.Context())
			c, err := g.client(ctx)
			if err != nil {
				return err
			}
			opts := client.ExecCreateOptions{
				User: o.user, Privileged: o.privileged, TTY: o.tty, WorkingDir: o.workdir,
				Env: append(env, o.env...), Cmd: args[1:], DetachKeys: o.detachKeys,
				AttachStdin: o.interactive && !o.detach, AttachStdout: !o.detach, AttachStderr: !o.detach,
			}
			if o.tty {
				if h, w, ok := terminalSize(cmd.OutOrStdout()); ok {
					opts.ConsoleSize = client.ConsoleSize{Height: h, Width: w}
				}
			}
			ex, err := c.ExecCreate(ctx, args[0], opts)
			if err != nil {
				return err
			}
			if o.detach {
				_, err := c.ExecStart(ctx, ex.ID, client.ExecStartOptions{Detach: true, TTY: o.tty})
				return err
			}
			hj, err := c.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{TTY: o.tty, ConsoleSize: opts.ConsoleSize})
			if err != nil {
				return startError(err)
			}
			defer hj.Close()
			s := streams{stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), tty: o.tty, detachKeys: o.detachKeys}
			if o.interactive {
				s.stdin = cmd.InOrStdin()
			}
			restore := rawTerminal(s.stdin, o.tty)
			stop, cancel := context.WithCancel(ctx)
			if o.tty {
				watchResize(stop, func(h, w uint) {
					c.ExecResize(stop, ex.ID, client.ExecResizeOptions{Height: h, Width: w})
				}, cmd.OutOrStdout(), cmd.InOrStdin())
			}
			err = pump(stop, hj.HijackedResponse, s)
			cancel()
			restore()
			if errors.Is(err, errDetached) {
				return nil // the process runs on
			}
			if err != nil {
				return err
			}
			res, err := c.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
			if err != nil {
				return err
			}
			if res.ExitCode != 0 {
				return statusError{code: res.ExitCode}
			}
			return nil
		},
	}
	f := c.Flags()
	f.BoolVarP(&o.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	f.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	f.BoolVarP(&o.detach, "detach", "d", false, "Detached mode: run command in the background")
	f.BoolVar(&o.privileged, "privileged", false, "Give extended privileges to the command")
	f.StringVarP(&o.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	f.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	f.StringVar(&o.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	f.StringArrayVarP(&o.env, "env", "e", nil, "Set environment variables")
	f.StringArrayVar(&o.envFiles, "env-file", nil, "Read in a file of environment variables")
	f.SetInterspersed(false)
	return c
}

func newAttach(g *globals) *cobra.Command {
	var noStdin, sigProxy bool
	var detachKeys string
	c := &cobra.Command{
		Use:     "attach [OPTIONS] CONTAINER",
		Short:   "Attach local standard input, output, and error streams to a running container",
		Example: "  berth attach web\n  berth attach --no-stdin web",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := context.WithoutCancel(cmd.Context())
			c, err := g.client(ctx)
			if err != nil {
				return err
			}
			info, err := c.ContainerInspect(ctx, args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			ct := info.Container
			if ct.State == nil || !ct.State.Running {
				return errors.New("you cannot attach to a stopped container, start it first")
			}
			tty := ct.Config != nil && ct.Config.Tty
			stdin := !noStdin && ct.Config != nil && ct.Config.OpenStdin
			hj, err := c.ContainerAttach(ctx, args[0], client.ContainerAttachOptions{Stream: true, Stdin: stdin, Stdout: true, Stderr: true, DetachKeys: detachKeys})
			if err != nil {
				return err
			}
			defer hj.Close()
			wait := c.ContainerWait(ctx, args[0], client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
			s := streams{stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), tty: tty, detachKeys: detachKeys}
			if stdin {
				s.stdin = cmd.InOrStdin()
			}
			restore := rawTerminal(s.stdin, tty)
			defer restore()
			stop, cancel := context.WithCancel(ctx)
			defer cancel()
			if tty {
				watchResize(stop, func(h, w uint) {
					c.ContainerResize(stop, args[0], client.ContainerResizeOptions{Height: h, Width: w})
				}, cmd.OutOrStdout(), cmd.InOrStdin())
			} else if sigProxy {
				proxySignals(stop, c, args[0])
			}
			if err := pump(stop, hj.HijackedResponse, s); err != nil {
				restore()
				if errors.Is(err, errDetached) {
					return nil
				}
				return err
			}
			restore()
			select {
			case res := <-wait.Result:
				return statusError{code: int(res.StatusCode)}
			case err := <-wait.Error:
				return err
			}
		},
	}
	c.Flags().BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	c.Flags().BoolVar(&sigProxy, "sig-proxy", true, "Proxy all received signals to the process")
	c.Flags().StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return c
}

func newCp(g *globals) *cobra.Command {
	var archive, follow bool
	c := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n  berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Long: `Copy files between a container and the local filesystem through the
archive API. "-" as the local path reads or writes a tar archive on
stdin/stdout.`,
		Example: `  berth cp web:/etc/hostname .
  berth cp ./config.json web:/etc/app/
  berth cp web:/var/log - | tar t`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_ = archive
			_ = follow
			srcC, srcP, srcIn := splitCpArg(args[0])
			dstC, dstP, dstIn := splitCpArg(args[1])
			if srcIn == dstIn {
				return usageError{errors.New("copying between containers or between local paths is not supported: one side must be CONTAINER:PATH")}
			}
			ctx := cmd.Context()
			c, err := g.client(ctx)
			if err != nil {
				return err
			}
			if srcIn {
				return copyFrom(ctx, cmd, c, srcC, srcP, dstP)
			}
			return copyTo(ctx, cmd, c, srcP, dstC, dstP)
		},
	}
	c.Flags().BoolVarP(&archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	c.Flags().BoolVarP(&follow, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	return c
}

// splitCpArg splits CONTAINER:PATH; a local path containing ':' must start
// with / or . as with docker.
func splitCpArg(s string) (ctr, path string, inContainer bool) {
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") || s == "-" {
		return "", s, false
	}
	c, p, ok := strings.Cut(s, ":")
	if !ok {
		return "", s, false
	}
	return c, p, true
}

func copyFrom(ctx context.Context, cmd *cobra.Command, c *client.Client, ctr, src, dst string) error {
	res, err := c.CopyFromContainer(ctx, ctr, client.CopyFromContainerOptions{SourcePath: src})
	if err != nil {
		return err
	}
	defer res.Content.Close()
	if dst == "-" {
		_, err := io.Copy(cmd.OutOrStdout(), res.Content)
		return err
	}
	// Extract locally with tar: the archive's top entry is the source's
	// base name; into an existing directory it lands inside, otherwise it
	// is renamed to dst.
	return untarTo(ctx, res.Content, res.Stat.Name, dst)
}

func copyTo(ctx context.Context, cmd *cobra.Command, c *client.Client, src, ctr, dst string) error {
	var content io.Reader
	if src == "-" {
		content = cmd.InOrStdin()
	} else {
		r, err := tarPath(ctx, src)
		if err != nil {
			return err
		}
		defer r.Close()
		content = r
		// A destination naming a directory receives src inside it; one
		// that does not exist is src's new name: PUT to its parent with the
		// archive's top entry renamed.
		st, err := c.ContainerStatPath(ctx, ctr, client.ContainerStatPathOptions{Path: dst})
		if err == nil && !st.Stat.Mode.IsDir() {
			return fmt.Errorf("cp: %s:%s exists and is not a directory", ctr, dst)
		}
		if err != nil && isNotFound(err) {
			rr, err := tarPathAs(ctx, src, filepath.Base(dst))
			if err != nil {
				return err
			}
			defer rr.Close()
			content, dst = rr, filepath.Dir(dst)
		} else if err != nil {
			return err
		}
	}
	_, err := c.CopyToContainer(ctx, ctr, client.CopyToContainerOptions{DestinationPath: dst, Content: content})
	return err
}

// inspectPaths are where each object type's JSON lives in the API.
var inspectPaths = map[string]string{"container": "/containers/%s/json", "image": "/images/%s/json", "volume": "/volumes/%s", "network": "/networks/%s"}

// runInspect prints the daemon's JSON for each name, as-is (every field
// the daemon sends), or through a template. kind "" tries container, then
// image, then network, then volume, as docker inspect does.
func runInspect(cmd *cobra.Command, g *globals, kind, format string, names []string) error {
	kinds := []string{kind}
	if kind == "" {
		kinds = []string{"container", "image", "network", "volume"}
	}
	var out []any
	var firstErr error
	for _, n := range names {
		var found any
		var lastErr error
		for _, k := range kinds {
			p, ok := inspectPaths[k]
			if !ok {
				return usageError{fmt.Errorf("--type %q: want container, image, network or volume", k)}
			}
			resp, err := g.raw(cmd.Context(), http.MethodGet, fmt.Sprintf(p, url.PathEscape(n)), nil, nil, true)
			if err != nil {
				lastErr = err
				if isNotFound(err) {
					continue
				}
				return err
			}
			var v any
			err = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			if err != nil {
				return fmt.Errorf("inspect %s: decoding the daemon's answer: %w", n, err)
			}
			found = v
			break
		}
		if found == nil {
			if kind == "" {
				lastErr = fmt.Errorf("no such object: %s", n)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "berth: "+lastErr.Error())
			if firstErr == nil {
				firstErr = statusError{code: 1}
			}
			continue
		}
		out = append(out, found)
	}
	if err := renderInspect(cmd.OutOrStdout(), format, out); err != nil {
		return err
	}
	return firstErr
}

func newInspectAny(g *globals) *cobra.Command {
	var format, kind string
	c := &cobra.Command{
		Use:     "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short:   "Return low-level information on containers, images, networks or volumes",
		Example: "  berth inspect web\n  berth inspect --type image -f '{{.Id}}' busybox",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(cmd, g, kind, format, args)
		},
	}
	c.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template, or 'json'")
	c.Flags().StringVar(&kind, "type", "", "Only inspect objects of the given type (container, image, network, volume)")
	return c
}

func newInspectTyped(g *globals, kind string) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:     "inspect [OPTIONS] " + strings.ToUpper(kind) + " [" + strings.ToUpper(kind) + "...]",
		Short:   "Display detailed information on one or more " + kind + "s",
		Example: "  berth " + kind + " inspect NAME\n  berth " + kind + " inspect -f '{{json .}}' NAME",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(cmd, g, kind, format, args)
		},
	}
	c.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template, or 'json'")
	return c
}
