package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/reference"
)

// containerCommands are the top-level container verbs (docker run, ps, ...).
func containerCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newCreate(g), newRun(g), newStart(g), newPs(g), newLogs(g), newStop(g), newKill(g),
		newRestart(g), newRm(g), newWait(g), newExec(g), newAttach(g), newTop(g), newCp(g),
		newExport(g), newPause(g), newUnpause(g), newRename(g), newUpdate(g), newPort(g),
		newStats(g),
	}
}

func newContainerCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:     "container COMMAND",
		Short:   "Manage containers",
		Example: "  berth container ls -a\n  berth container prune -f",
		Args:    exactArgs(0),
		RunE:    func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	ls := newPs(g)
	ls.Use, ls.Aliases = "ls [OPTIONS]", []string{"list", "ps"}
	rm := newRm(g)
	rm.Aliases = []string{"remove"}
	inspect := newInspectTyped(g, "container")
	c.AddCommand(containerCommands(g)...)
	c.AddCommand(ls, inspect, newContainerPrune(g))
	// `container rm` and `container ps` come from containerCommands: drop
	// the duplicates the aliases above cover.
	for _, sub := range c.Commands() {
		if sub.Name() == "ps" || (sub.Name() == "rm" && sub != rm) {
			c.RemoveCommand(sub)
		}
	}
	c.AddCommand(rm)
	return c
}

// createContainer creates a container, pulling its image first when the
// daemon lacks it (--pull missing) or always (--pull always).
func createContainer(ctx context.Context, g *globals, o *runOptions, args []string) (string, error) {
	req, err := o.containerConfig(args[0], args[1:])
	if err != nil {
		return "", err
	}
	cfg := req.config
	if !o.detach || o.interactive {
		cfg.AttachStdout, cfg.AttachStderr = true, true
		cfg.AttachStdin = o.interactive
	}
	var plat *ocispec.Platform
	var plats []ocispec.Platform
	if o.platform != "" {
		p, err := reference.ParsePlatform(o.platform)
		if err != nil {
			return "", usageError{err}
		}
		plat = &ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
		plats = []ocispec.Platform{*plat}
	}
	c, err := g.client(ctx)
	if err != nil {
		return "", exitError{125, err}
	}
	pull := func() error {
		ref, err := reference.Parse(args[0])
		if err != nil {
			return exitError{125, err}
		}
		if err := pullImage(ctx, g, ref, plats, g.stderr, false); err != nil {
			return exitError{125, err}
		}
		return nil
	}
	if o.pull == "always" {
		if err := pull(); err != nil {
			return "", err
		}
	}
	opts := client.ContainerCreateOptions{Config: cfg, HostConfig: req.hostConfig, NetworkingConfig: req.networking, Platform: plat, Name: o.name}
	res, err := c.ContainerCreate(ctx, opts)
	if err != nil && cerrdefs.IsNotFound(err) && o.pull == "missing" {
		fmt.Fprintf(g.stderr, "Unable to find image '%s' locally\n", args[0])
		if err := pull(); err != nil {
			return "", err
		}
		res, err = c.ContainerCreate(ctx, opts)
	}
	if err != nil {
		return "", exitError{125, err}
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(g.stderr, "WARNING: "+w)
	}
	return res.ID, nil
}

func newCreate(g *globals) *cobra.Command {
	o := &runOptions{}
	c := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Example: `  berth create --name web -p 8080:80 nginx
  berth create -it busybox sh`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.detach = true
			id, err := createContainer(cmd.Context(), g, o, args)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
	addCreateFlags(c.Flags(), o)
	return c
}

func newRun(g *globals) *cobra.Command {
	o := &runOptions{}
	c := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container from an image",
		Example: `  berth run --rm busybox echo hello
  berth run -it --rm busybox sh
  berth run -d --name web -p 8080:80 nginx
  berth run -d --network app --network-alias db postgres
  berth run -d --name web --network host busybox httpd -f -p 8080
  berth run --rm -v /srv/data:/data:ro -e MODE=check busybox ls /data`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd, g, o, args)
		},
	}
	f := c.Flags()
	addCreateFlags(f, o)
	f.BoolVarP(&o.detach, "detach", "d", false, "Run container in background and print container ID")
	f.BoolVar(&o.rm, "rm", false, "Automatically remove the container when it exits")
	f.BoolVar(&o.sigProxy, "sig-proxy", true, "Proxy received signals to the process (non-TTY mode only)")
	f.StringArrayVarP(&o.attach, "attach", "a", nil, "Attach to STDIN, STDOUT or STDERR")
	f.StringVar(&o.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return c
}

// runRun is docker run: create (pulling when needed), attach before start
// so no output is lost, start, wait, and exit with the container's code.
func runRun(cmd *cobra.Command, g *globals, o *runOptions, args []string) error {
	if o.detach && len(o.attach) > 0 {
		return usageError{errors.New("conflicting options: cannot specify both --attach and --detach")}
	}
	// The signal-cancelled context must not end the wait: SIGINT is for the
	// container (sig-proxy), and the container's exit ends the CLI.
	ctx := context.WithoutCancel(cmd.Context())
	id, err := createContainer(ctx, g, o, args)
	if err != nil {
		return err
	}
	c := g.api
	if o.detach {
		if _, err := c.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			return startError(err)
		}
		fmt.Fprintln(cmd.OutOrStdout(), id)
		return nil
	}
	want := map[string]bool{"stdout": true, "stderr": true, "stdin": o.interactive}
	if len(o.attach) > 0 {
		want = map[string]bool{}
		for _, a := range o.attach {
			want[strings.ToLower(a)] = true
		}
	}
	hj, err := c.ContainerAttach(ctx, id, client.ContainerAttachOptions{
		Stream: true, Stdin: want["stdin"], Stdout: want["stdout"], Stderr: want["stderr"], DetachKeys: o.detachKeys,
	})
	if err != nil {
		return exitError{125, err}
	}
	defer hj.Close()
	cond := container.WaitConditionNextExit
	if o.rm {
		cond = container.WaitConditionRemoved
	}
	wait := c.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: cond})
	s := streams{stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), tty: o.tty, detachKeys: o.detachKeys}
	if !want["stdout"] {
		s.stdout = io.Discard
	}
	if !want["stderr"] {
		s.stderr = io.Discard
	}
	if want["stdin"] {
		s.stdin = cmd.InOrStdin()
	}
	restore := rawTerminal(s.stdin, o.tty)
	defer restore()
	if _, err := c.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		restore()
		if o.rm {
			c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
		}
		return startError(err)
	}
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.tty {
		watchResize(stop, func(h, w uint) {
			c.ContainerResize(stop, id, client.ContainerResizeOptions{Height: h, Width: w})
		}, cmd.OutOrStdout(), cmd.InOrStdin())
	} else if o.sigProxy {
		proxySignals(stop, c, id)
	}
	streamErr := make(chan error, 1)
	go func() { streamErr <- pump(stop, hj.HijackedResponse, s) }()
	var res container.WaitResponse
	select {
	case err := <-streamErr:
		if errors.Is(err, errDetached) {
			restore()
			return nil // left with the detach keys: the container runs on
		}
		// The output ended: the exit status follows.
		select {
		case res = <-wait.Result:
		case err := <-wait.Error:
			restore()
			return exitError{125, fmt.Errorf("waiting for container %s: %w", shortID(id), err)}
		}
	case res = <-wait.Result:
		// Drain what the container wrote last before leaving.
		select {
		case <-streamErr:
		case <-time.After(2 * time.Second):
		}
	case err := <-wait.Error:
		restore()
		return exitError{125, fmt.Errorf("waiting for container %s: %w", shortID(id), err)}
	}
	{
		restore()
		if res.Error != nil && res.Error.Message != "" {
			return exitError{125, errors.New(res.Error.Message)}
		}
		return statusError{code: int(res.StatusCode)}
	}
}

// startError maps a failed start to docker's codes: 127 for a command that
// does not exist, 126 for one that cannot be run, 125 otherwise.
func startError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory"):
		return exitError{127, err}
	case strings.Contains(msg, "permission denied"):
		return exitError{126, err}
	}
	return exitError{125, err}
}

func newStart(g *globals) *cobra.Command {
	var attach, interactive bool
	var detachKeys string
	c := &cobra.Command{
		Use:     "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short:   "Start one or more stopped containers",
		Example: "  berth start web\n  berth start -ai shell",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := context.WithoutCancel(cmd.Context())
			c, err := g.client(ctx)
			if err != nil {
				return err
			}
			if !attach && !interactive {
				return eachContainer(cmd, args, func(id string) error {
					_, err := c.ContainerStart(ctx, id, client.ContainerStartOptions{})
					return err
				})
			}
			if len(args) > 1 {
				return usageError{errors.New("you cannot start and attach multiple containers at once")}
			}
			info, err := c.ContainerInspect(ctx, args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			tty := info.Container.Config != nil && info.Container.Config.Tty
			hj, err := c.ContainerAttach(ctx, args[0], client.ContainerAttachOptions{Stream: true, Stdin: interactive, Stdout: true, Stderr: true, DetachKeys: detachKeys})
			if err != nil {
				return err
			}
			defer hj.Close()
			wait := c.ContainerWait(ctx, args[0], client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
			s := streams{stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), tty: tty, detachKeys: detachKeys}
			if interactive {
				s.stdin = cmd.InOrStdin()
			}
			restore := rawTerminal(s.stdin, tty)
			defer restore()
			if _, err := c.ContainerStart(ctx, args[0], client.ContainerStartOptions{}); err != nil {
				return startError(err)
			}
			stop, cancel := context.WithCancel(ctx)
			defer cancel()
			if tty {
				watchResize(stop, func(h, w uint) {
					c.ContainerResize(stop, args[0], client.ContainerResizeOptions{Height: h, Width: w})
				}, cmd.OutOrStdout(), cmd.InOrStdin())
			} else {
				proxySignals(stop, c, args[0])
			}
			streamErr := make(chan error, 1)
			go func() { streamErr <- pump(stop, hj.HijackedResponse, s) }()
			select {
			case err := <-streamErr:
				restore()
				if errors.Is(err, errDetached) {
					return nil
				}
				select {
				case res := <-wait.Result:
					return statusError{code: int(res.StatusCode)}
				case err := <-wait.Error:
					return err
				}
			case res := <-wait.Result:
				select {
				case <-streamErr:
				case <-time.After(2 * time.Second):
				}
				restore()
				return statusError{code: int(res.StatusCode)}
			case err := <-wait.Error:
				return err
			}
		},
	}
	c.Flags().BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	c.Flags().BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	c.Flags().StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return c
}

// eachContainer runs fn for each argument, printing the argument on
// success and the error on failure, as docker's stop/kill/rm do; the
// command fails (exit 1) if any did.
func eachContainer(cmd *cobra.Command, args []string, fn func(id string) error) error {
	failed := 0
	for _, a := range args {
		if err := fn(a); err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "berth: "+strings.TrimPrefix(err.Error(), "Error response from daemon: "))
			failed++
			continue
		}
		fmt.Fprintln(cmd.OutOrStdout(), a)
	}
	if failed > 0 {
		return statusError{code: 1}
	}
	return nil
}

func newStop(g *globals) *cobra.Command {
	return newStopLike(g, "stop", "Stop one or more running containers", "  berth stop web\n  berth stop -t 1 -s SIGINT web",
		func(ctx context.Context, c *client.Client, id string, timeout *int, sig string) error {
			_, err := c.ContainerStop(ctx, id, client.ContainerStopOptions{Signal: sig, Timeout: timeout})
			return err
		})
}

func newRestart(g *globals) *cobra.Command {
	return newStopLike(g, "restart", "Restart one or more containers", "  berth restart web",
		func(ctx context.Context, c *client.Client, id string, timeout *int, sig string) error {
			_, err := c.ContainerRestart(ctx, id, client.ContainerRestartOptions{Signal: sig, Timeout: timeout})
			return err
		})
}

// newStopLike makes stop and restart: the same flags (-t, -s) over one
// container call each.
func newStopLike(g *globals, verb, short, example string, do func(ctx context.Context, c *client.Client, id string, timeout *int, sig string) error) *cobra.Command {
	var timeout int
	var sig string
	c := &cobra.Command{
		Use:     verb + " [OPTIONS] CONTAINER [CONTAINER...]",
		Short:   short,
		Example: example,
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			var t *int
			if cmd.Flags().Changed("time") {
				t = &timeout
			}
			return eachContainer(cmd, args, func(id string) error { return do(cmd.Context(), c, id, t, sig) })
		},
	}
	c.Flags().IntVarP(&timeout, "time", "t", 10, "Seconds to wait before killing the container")
	c.Flags().StringVarP(&sig, "signal", "s", "", "Signal to send to the container")
	return c
}

func newKill(g *globals) *cobra.Command {
	var sig string
	c := &cobra.Command{
		Use:     "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short:   "Kill one or more running containers",
		Example: "  berth kill web\n  berth kill -s HUP web",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			return eachContainer(cmd, args, func(id string) error {
				_, err := c.ContainerKill(cmd.Context(), id, client.ContainerKillOptions{Signal: sig})
				return err
			})
		},
	}
	c.Flags().StringVarP(&sig, "signal", "s", "", "Signal to send to the container (default KILL)")
	return c
}

func newRm(g *globals) *cobra.Command {
	var force, vols bool
	c := &cobra.Command{
		Use:     "rm [OPTIONS] CONTAINER [CONTAINER...]",
		Short:   "Remove one or more containers",
		Example: "  berth rm web\n  berth rm -f -v web",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			return eachContainer(cmd, args, func(id string) error {
				_, err := c.ContainerRemove(cmd.Context(), id, client.ContainerRemoveOptions{Force: force, RemoveVolumes: vols})
				return err
			})
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	c.Flags().BoolVarP(&vols, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	return c
}

func simpleVerb(g *globals, use, short, example string, fn func(ctx context.Context, c *client.Client, id string) error) *cobra.Command {
	return &cobra.Command{
		Use:     use + " CONTAINER [CONTAINER...]",
		Short:   short,
		Example: example,
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			return eachContainer(cmd, args, func(id string) error { return fn(cmd.Context(), c, id) })
		},
	}
}

func newPause(g *globals) *cobra.Command {
	return simpleVerb(g, "pause", "Pause all processes within one or more containers", "  berth pause web",
		func(ctx context.Context, c *client.Client, id string) error {
			_, err := c.ContainerPause(ctx, id, client.ContainerPauseOptions{})
			return err
		})
}

func newUnpause(g *globals) *cobra.Command {
	return simpleVerb(g, "unpause", "Unpause all processes within one or more containers", "  berth unpause web",
		func(ctx context.Context, c *client.Client, id string) error {
			_, err := c.ContainerUnpause(ctx, id, client.ContainerUnpauseOptions{})
			return err
		})
}

func newWait(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "wait CONTAINER [CONTAINER...]",
		Short:   "Block until one or more containers stop, then print their exit codes",
		Example: "  berth wait web",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			failed := false
			for _, id := range args {
				w := c.ContainerWait(cmd.Context(), id, client.ContainerWaitOptions{})
				select {
				case res := <-w.Result:
					fmt.Fprintln(cmd.OutOrStdout(), res.StatusCode)
				case err := <-w.Error:
					fmt.Fprintln(cmd.ErrOrStderr(), "berth: "+strings.TrimPrefix(err.Error(), "Error response from daemon: "))
					failed = true
				}
			}
			if failed {
				return statusError{code: 1}
			}
			return nil
		},
	}
}

func newRename(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rename CONTAINER NEW_NAME",
		Short:   "Rename a container",
		Example: "  berth rename web web-old",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			_, err = c.ContainerRename(cmd.Context(), args[0], client.ContainerRenameOptions{NewName: args[1]})
			return err
		},
	}
}

func newUpdate(g *globals) *cobra.Command {
	var o runOptions
	c := &cobra.Command{
		Use:     "update [OPTIONS] CONTAINER [CONTAINER...]",
		Short:   "Update configuration of one or more containers",
		Example: "  berth update -m 256m --cpus 0.5 web\n  berth update --restart unless-stopped web",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r container.Resources
			var err error
			if r.Memory, err = parseBytes("--memory", o.memory); err != nil {
				return usageError{err}
			}
			if o.memorySwap == "-1" {
				r.MemorySwap = -1
			} else if r.MemorySwap, err = parseBytes("--memory-swap", o.memorySwap); err != nil {
				return usageError{err}
			}
			if o.cpus != "" {
				f, err := strconv.ParseFloat(o.cpus, 64)
				if err != nil || f < 0 {
					return usageError{fmt.Errorf("--cpus %q: want a non-negative number such as 1.5", o.cpus)}
				}
				r.NanoCPUs = int64(f * 1e9)
			}
			r.CPUShares = o.cpuShares
			if cmd.Flags().Changed("pids-limit") {
				p := o.pidsLimit
				r.PidsLimit = &p
			}
			opts := client.ContainerUpdateOptions{Resources: &r}
			if o.restart != "" {
				p, err := parseRestart(o.restart)
				if err != nil {
					return usageError{err}
				}
				opts.RestartPolicy = &p
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			return eachContainer(cmd, args, func(id string) error {
				res, err := c.ContainerUpdate(cmd.Context(), id, opts)
				for _, w := range res.Warnings {
					fmt.Fprintln(cmd.ErrOrStderr(), "WARNING: "+w)
				}
				return err
			})
		},
	}
	f := c.Flags()
	f.StringVarP(&o.memory, "memory", "m", "", "Memory limit")
	f.StringVar(&o.memorySwap, "memory-swap", "", "Swap limit equal to memory plus swap: -1 to enable unlimited swap")
	f.StringVar(&o.cpus, "cpus", "", "Number of CPUs")
	f.Int64VarP(&o.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	f.Int64Var(&o.pidsLimit, "pids-limit", 0, "Tune container pids limit (-1 for unlimited)")
	f.StringVar(&o.restart, "restart", "", "Restart policy to apply when a container exits")
	return c
}

// psRow is one line of ps, with Docker's --format field names.
type psRow struct {
	ID, Image, Command, CreatedAt, RunningFor, Ports, State, Status, Size, Names, Labels, Mounts, Networks string

	labels map[string]string
}

// Label is one label's value, as in docker ps --format '{{.Label "k"}}'.
func (r psRow) Label(key string) string { return r.labels[key] }

func newPs(g *globals) *cobra.Command {
	var o struct {
		all, quiet, latest, size, noTrunc bool
		last                              int
		filters                           []string
		format                            string
	}
	c := &cobra.Command{
		Use:   "ps [OPTIONS]",
		Short: "List containers",
		Example: `  berth ps
  berth ps -a --filter status=exited
  berth ps -q
  berth ps --format '{{.Names}} {{.Status}}'`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			flt, err := parseFilters(o.filters, nil)
			if err != nil {
				return usageError{err}
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			opts := client.ContainerListOptions{All: o.all, Size: o.size, Filters: flt, Latest: o.latest}
			if o.last > 0 {
				opts.Limit, opts.All = o.last, true
			}
			list, err := c.ContainerList(cmd.Context(), opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var items []any
			for _, s := range list.Items {
				id := s.ID
				if !o.noTrunc {
					id = shortID(id)
				}
				if o.quiet {
					fmt.Fprintln(out, id)
					continue
				}
				command := s.Command
				if !o.noTrunc && len([]rune(command)) > 20 {
					command = string([]rune(command)[:19]) + "…"
				}
				command = strconv.Quote(command) // docker shows it quoted

				var names []string
				for _, n := range s.Names {
					n = strings.TrimPrefix(n, "/")
					if !strings.Contains(n, "/") { // links of other containers
						names = append(names, n)
					}
				}
				var labels []string
				for k, v := range s.Labels {
					labels = append(labels, k+"="+v)
				}
				var networks []string
				if s.NetworkSettings != nil {
					for n := range s.NetworkSettings.Networks {
						networks = append(networks, n)
					}
				}
				created := time.Unix(s.Created, 0)
				r := psRow{
					ID: id, Image: s.Image, Command: command,
					CreatedAt: created.Format("2006-01-02 15:04:05 -0700 MST"), RunningFor: since(created),
					Ports: displayPorts(s.Ports), State: string(s.State), Status: s.Status, Names: strings.Join(names, ","),
					Labels: strings.Join(sortedStrings(labels), ","), labels: s.Labels, Networks: strings.Join(sortedStrings(networks), ","),
				}
				if o.size {
					r.Size = units.HumanSizeWithPrecision(float64(s.SizeRw), 3)
					if s.SizeRootFs > 0 {
						r.Size += fmt.Sprintf(" (virtual %s)", units.HumanSizeWithPrecision(float64(s.SizeRootFs), 3))
					}
				}
				items = append(items, r)
			}
			if o.quiet {
				return nil
			}
			def := "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
			if o.size {
				def += "\t{{.Size}}"
			}
			headers := map[string]string{"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
				"RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
				"Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS"}
			return render(out, o.format, def, headers, items)
		},
	}
	f := c.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "Show all containers (default shows just running)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only display container IDs")
	f.IntVarP(&o.last, "last", "n", -1, "Show n last created containers (includes all states)")
	f.BoolVarP(&o.latest, "latest", "l", false, "Show the latest created container (includes all states)")
	f.BoolVarP(&o.size, "size", "s", false, "Display total file sizes")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	f.StringArrayVarP(&o.filters, "filter", "f", nil, "Filter output based on conditions provided")
	f.StringVar(&o.format, "format", "", "Format output using a Go template, 'table', 'table TEMPLATE' or 'json'")
	return c
}

func sortedStrings(s []string) []string {
	sort.Strings(s)
	return s
}

func newLogs(g *globals) *cobra.Command {
	var o struct {
		follow, timestamps, details bool
		tail, since, until          string
	}
	c := &cobra.Command{
		Use:     "logs [OPTIONS] CONTAINER",
		Short:   "Fetch the logs of a container",
		Example: "  berth logs web\n  berth logs -f --tail 10 web\n  berth logs --since 10m -t web",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			since, err := parseTimeArg(o.since)
			if err != nil {
				return usageError{fmt.Errorf("--since %v", err)}
			}
			until, err := parseTimeArg(o.until)
			if err != nil {
				return usageError{fmt.Errorf("--until %v", err)}
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			info, err := c.ContainerInspect(cmd.Context(), args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			r, err := c.ContainerLogs(cmd.Context(), args[0], client.ContainerLogsOptions{
				ShowStdout: true, ShowStderr: true, Since: since, Until: until, Timestamps: o.timestamps,
				Follow: o.follow, Tail: o.tail, Details: o.details,
			})
			if err != nil {
				return err
			}
			defer r.Close()
			if info.Container.Config != nil && info.Container.Config.Tty {
				_, err = io.Copy(cmd.OutOrStdout(), r)
			} else {
				_, err = stdcopyStreams(cmd.OutOrStdout(), cmd.ErrOrStderr(), r)
			}
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	f := c.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "Follow log output")
	f.BoolVarP(&o.timestamps, "timestamps", "t", false, "Show timestamps")
	f.BoolVar(&o.details, "details", false, "Show extra details provided to logs")
	f.StringVarP(&o.tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	f.StringVar(&o.since, "since", "", "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)")
	f.StringVar(&o.until, "until", "", "Show logs before a timestamp or relative time")
	return c
}

func newTop(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "top CONTAINER [ps OPTIONS]",
		Short:   "Display the running processes of a container",
		Example: "  berth top web\n  berth top web -o pid,comm",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := c.ContainerTop(cmd.Context(), args[0], client.ContainerTopOptions{Arguments: args[1:]})
			if err != nil {
				return err
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, strings.Join(res.Titles, "\t"))
			for _, p := range res.Processes {
				fmt.Fprintln(tw, strings.Join(p, "\t"))
			}
			return tw.Flush()
		},
	}
}

func newExport(g *globals) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:     "export [OPTIONS] CONTAINER",
		Short:   "Export a container's filesystem as a tar archive",
		Example: "  berth export -o web.tar web\n  berth export web | tar t",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				if f, ok := cmd.OutOrStdout().(*os.File); ok && isTerminal(f) {
					return usageError{errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")}
				}
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			r, err := c.ContainerExport(cmd.Context(), args[0], client.ContainerExportOptions{})
			if err != nil {
				return err
			}
			defer r.Close()
			return writeOutput(cmd, output, r)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return c
}

func newContainerPrune(g *globals) *cobra.Command {
	var force bool
	var filters []string
	c := &cobra.Command{
		Use:     "prune [OPTIONS]",
		Short:   "Remove all stopped containers",
		Example: "  berth container prune -f",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			_ = force
			flt, err := parseFilters(filters, map[string]bool{"until": true, "label": true, "label!": true})
			if err != nil {
				return usageError{err}
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := c.ContainerPrune(cmd.Context(), client.ContainerPruneOptions{Filters: flt})
			if err != nil {
				return err
			}
			printDeleted(cmd.OutOrStdout(), "Deleted Containers:", res.Report.ContainersDeleted)
			fmt.Fprintf(cmd.OutOrStdout(), "Total reclaimed space: %s\n", units.HumanSizeWithPrecision(float64(res.Report.SpaceReclaimed), 3))
			return nil
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	c.Flags().StringArrayVar(&filters, "filter", nil, "Provide filter values (e.g. until=<timestamp>)")
	return c
}
