package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func newSystemCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:     "system COMMAND",
		Short:   "Manage berth",
		Example: "  berth system df\n  berth system check\n  berth system info",
		Args:    exactArgs(0),
		RunE:    func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	c.AddCommand(newDf(g), newCheck(g), newGC(g), newInfo(g), newSystemPrune(g), newEvents(g))
	return c
}

func newDf(g *globals) *cobra.Command {
	var verbose bool
	c := &cobra.Command{
		Use:     "df",
		Short:   "Show berth disk usage",
		Example: "  berth system df",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			u, err := c.DiskUsage(cmd.Context(), client.DiskUsageOptions{Containers: true, Images: true, Volumes: true, BuildCache: true, Verbose: verbose})
			if err != nil {
				return err
			}
			h := func(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }
			pct := func(r, t int64) string {
				if t <= 0 {
					return h(r)
				}
				return fmt.Sprintf("%s (%d%%)", h(r), 100*r/t)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 10, 1, 3, ' ', 0)
			fmt.Fprintln(tw, "TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE")
			fmt.Fprintf(tw, "Images\t%d\t%d\t%s\t%s\n", u.Images.TotalCount, u.Images.ActiveCount, h(u.Images.TotalSize), pct(u.Images.Reclaimable, u.Images.TotalSize))
			fmt.Fprintf(tw, "Containers\t%d\t%d\t%s\t%s\n", u.Containers.TotalCount, u.Containers.ActiveCount, h(u.Containers.TotalSize), pct(u.Containers.Reclaimable, u.Containers.TotalSize))
			fmt.Fprintf(tw, "Local Volumes\t%d\t%d\t%s\t%s\n", u.Volumes.TotalCount, u.Volumes.ActiveCount, h(u.Volumes.TotalSize), pct(u.Volumes.Reclaimable, u.Volumes.TotalSize))
			fmt.Fprintf(tw, "Build Cache\t%d\t%d\t%s\t%s\n", u.BuildCache.TotalCount, u.BuildCache.ActiveCount, h(u.BuildCache.TotalSize), pct(u.BuildCache.Reclaimable, u.BuildCache.TotalSize))
			if err := tw.Flush(); err != nil {
				return err
			}
			if verbose {
				out := cmd.OutOrStdout()
				fmt.Fprintln(out, "\nImages space usage:")
				tw := tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
				fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tCONTAINERS")
				for _, im := range u.Images.Items {
					for _, n := range imageNames(im.RepoTags, im.RepoDigests) {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", n.repo, n.tag, shortID(im.ID), since(time.Unix(im.Created, 0)), h(im.Size), im.Containers)
					}
				}
				return tw.Flush()
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "Show detailed information on space usage")
	return c
}

// problem is one finding of POST /berth/v1/system/check (the daemon's
// dockerapi.CheckProblem): the object and what is wrong with it.
type problem struct {
	Object string `json:"object"`
	Error  string `json:"error"`
}

func (p problem) String() string { return p.Object + ": " + p.Error }

func newCheck(g *globals) *cobra.Command {
	var repair bool
	c := &cobra.Command{
		Use:   "check [OPTIONS]",
		Short: "Verify every blob's digest and every image's content",
		Example: `  berth system check
  berth system check --repair   # delete corrupt blobs so the next pull fetches them again`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if repair {
				q.Set("repair", "1")
			}
			var res struct {
				Problems []problem `json:"problems"`
			}
			if err := g.rawJSON(cmd.Context(), http.MethodPost, "/berth/v1/system/check", q, &res); err != nil {
				return err
			}
			probs := res.Problems
			for _, p := range probs {
				fmt.Fprintln(cmd.OutOrStdout(), p.String())
			}
			if len(probs) > 0 {
				msg := fmt.Sprintf("%d problem(s) found", len(probs))
				if repair {
					msg += "; corrupt blobs were removed: pull the affected images again"
				}
				return statusError{code: 1, msg: msg}
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok: no problems found")
			return nil
		},
	}
	c.Flags().BoolVar(&repair, "repair", false, "Delete corrupt blobs")
	return c
}

// gcResult is the answer of POST /berth/v1/images/gc.
type gcResult struct {
	Blobs, Layers, Ingests int
	Reclaimed              int64
}

func newGC(g *globals) *cobra.Command {
	var keep bool
	c := &cobra.Command{
		Use:   "gc [OPTIONS]",
		Short: "Remove blobs, layers and partial downloads no image references",
		Long: `Remove every blob and unpacked layer no image references, temporary files a
crash left, and (unless --keep-partial) interrupted downloads, which a later
pull would otherwise resume. It waits for running pulls, loads and imports.`,
		Example: "  berth system gc\n  berth system gc --keep-partial",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"ingests": {"1"}}
			if keep {
				q.Set("ingests", "0")
			}
			var r gcResult
			if err := g.rawJSON(cmd.Context(), http.MethodPost, "/berth/v1/images/gc", q, &r); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed %d blob(s), %d layer(s), %d partial download(s)\nTotal reclaimed space: %s\n",
				r.Blobs, r.Layers, r.Ingests, units.HumanSizeWithPrecision(float64(r.Reclaimed), 3))
			return nil
		},
	}
	c.Flags().BoolVar(&keep, "keep-partial", false, "Keep interrupted downloads for later pulls to resume")
	return c
}

func newInfo(g *globals) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:     "info [OPTIONS]",
		Short:   "Display system-wide information",
		Example: "  berth info\n  berth system info --format '{{.DockerRootDir}}'",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := c.Info(cmd.Context(), client.InfoOptions{})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if format != "" {
				return renderInspect(out, format, []any{res.Info})
			}
			i := res.Info
			host, _ := g.daemonHost()
			fmt.Fprintf(out, "Client:\n Version:    %s\n Context:    %s\n\n", Version, host)
			fmt.Fprintf(out, "Server:\n Containers: %d\n  Running: %d\n  Paused: %d\n  Stopped: %d\n Images: %d\n",
				i.Containers, i.ContainersRunning, i.ContainersPaused, i.ContainersStopped, i.Images)
			fmt.Fprintf(out, " Server Version: %s\n Storage Driver: %s\n Logging Driver: %s\n Cgroup Driver: %s\n Cgroup Version: %s\n",
				i.ServerVersion, i.Driver, i.LoggingDriver, i.CgroupDriver, i.CgroupVersion)
			if len(i.Runtimes) > 0 {
				var names []string
				for n := range i.Runtimes {
					names = append(names, n)
				}
				fmt.Fprintf(out, " Runtimes: %s\n", strings.Join(sortedStrings(names), " "))
			}
			fmt.Fprintf(out, " Default Runtime: %s\n Security Options: %s\n Kernel Version: %s\n Operating System: %s\n OSType: %s\n Architecture: %s\n CPUs: %d\n Total Memory: %s\n Name: %s\n ID: %s\n Docker Root Dir: %s\n Debug Mode: %v\n",
				i.DefaultRuntime, strings.Join(i.SecurityOptions, " "), i.KernelVersion, i.OperatingSystem, i.OSType, i.Architecture,
				i.NCPU, units.BytesSize(float64(i.MemTotal)), i.Name, i.ID, i.DockerRootDir, i.Debug)
			for _, w := range i.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), w)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template, or 'json'")
	return c
}

func newSystemPrune(g *globals) *cobra.Command {
	var all, volumes, force bool
	c := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused data",
		Long:  "Remove stopped containers, dangling images (with -a, every image no container uses) and, with --volumes, unused anonymous volumes.",
		Example: `  berth system prune -f
  berth system prune -a --volumes -f`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			_ = force // berth never prompts
			ctx := cmd.Context()
			c, err := g.client(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var total uint64
			cr, err := c.ContainerPrune(ctx, client.ContainerPruneOptions{})
			if err != nil {
				return err
			}
			printDeleted(out, "Deleted Containers:", cr.Report.ContainersDeleted)
			total += cr.Report.SpaceReclaimed
			if volumes {
				vr, err := c.VolumePrune(ctx, client.VolumePruneOptions{})
				if err != nil {
					return err
				}
				printDeleted(out, "Deleted Volumes:", vr.Report.VolumesDeleted)
				total += vr.Report.SpaceReclaimed
			}
			f := client.Filters{}
			if !all {
				f.Add("dangling", "true")
			} else {
				f.Add("dangling", "false")
			}
			ir, err := c.ImagePrune(ctx, client.ImagePruneOptions{Filters: f})
			if err != nil {
				return err
			}
			printImagesDeleted(out, ir.Report.ImagesDeleted)
			total += ir.Report.SpaceReclaimed
			fmt.Fprintf(out, "Total reclaimed space: %s\n", units.HumanSizeWithPrecision(float64(total), 3))
			return nil
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	c.Flags().BoolVar(&volumes, "volumes", false, "Prune anonymous volumes")
	c.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return c
}

func printDeleted(out io.Writer, title string, ids []string) {
	if len(ids) == 0 {
		return
	}
	fmt.Fprintln(out, title)
	for _, id := range ids {
		fmt.Fprintln(out, id)
	}
	fmt.Fprintln(out)
}

func newVersion(g *globals) *cobra.Command {
	var format string
	return &cobra.Command{
		Use:     "version",
		Short:   "Show the berth version information",
		Example: "  berth version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "berth version %s\n", Version)
			fmt.Fprintf(out, "Client:\n Version:     %s\n API version: %s\n Go version:  %s\n OS/Arch:     %s/%s\n",
				Version, client.MaxAPIVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			// The server part is shown when a daemon answers; version never
			// starts one.
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			c, err := g.connect(ctx, false)
			if err != nil {
				fmt.Fprintf(out, "\nServer: not reachable (%v)\n", err)
				return nil
			}
			v, err := c.ServerVersion(ctx, client.ServerVersionOptions{})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "\nServer: %s\n Engine:\n  Version:     %s\n  API version: %s (minimum version %s)\n  OS/Arch:     %s/%s\n",
				v.Platform.Name, v.Version, v.APIVersion, v.MinAPIVersion, v.Os, v.Arch)
			_ = format
			return nil
		},
	}
}

func humanSize(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }
