package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/atomicfile"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/reference"
)

type pullOptions struct {
	platform string
	quiet    bool
}

func newPull(g *globals) *cobra.Command {
	var o pullOptions
	c := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Example: `  berth pull busybox
  berth pull --platform linux/arm64 alpine:3.20
  berth pull localhost:5000/team/app@sha256:0123...`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPull(cmd, g, o, args[0])
		},
	}
	c.Flags().StringVar(&o.platform, "platform", "", "Platform to pull from a multi-platform image (os/arch[/variant]); default: this host")
	c.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "Suppress progress output")
	return c
}

func runPull(cmd *cobra.Command, g *globals, o pullOptions, arg string) error {
	var plats []ocispec.Platform
	if o.platform != "" {
		plat, err := reference.ParsePlatform(o.platform)
		if err != nil {
			return usageError{err}
		}
		plats = []ocispec.Platform{{OS: plat.OS, Architecture: plat.Architecture, Variant: plat.Variant}}
	}
	ref, err := reference.Parse(arg)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if err := pullImage(cmd.Context(), g, ref, plats, out, o.quiet); err != nil {
		return err
	}
	fmt.Fprintln(out, ref.String())
	return nil
}

// pullImage asks the daemon to pull ref and renders its progress on w.
func pullImage(ctx context.Context, g *globals, ref reference.Reference, plats []ocispec.Platform, w io.Writer, quiet bool) error {
	c, err := g.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.ImagePull(ctx, ref.String(), client.ImagePullOptions{RegistryAuth: registryAuth(ref.Domain()), Platforms: plats})
	if err != nil {
		return err
	}
	defer resp.Close()
	pr := newProgress(w, quiet)
	err = pr.stream(resp, nil)
	pr.Close()
	return err
}

// registryAuth encodes the stored credentials for host as Docker's
// X-Registry-Auth header: the CLI reads them (config.json, credential
// helpers) and hands them to the daemon with each pull and push.
func registryAuth(host string) string {
	reg, err := name.NewRegistry(host)
	if err != nil {
		return ""
	}
	a, err := authn.DefaultKeychain.Resolve(reg)
	if err != nil || a == authn.Anonymous {
		return ""
	}
	cfg, err := a.Authorization()
	if err != nil || (cfg.Username == "" && cfg.IdentityToken == "" && cfg.RegistryToken == "") {
		return ""
	}
	b, _ := json.Marshal(registry.AuthConfig{
		Username: cfg.Username, Password: cfg.Password, ServerAddress: host,
		IdentityToken: cfg.IdentityToken, RegistryToken: cfg.RegistryToken,
	})
	return base64.URLEncoding.EncodeToString(b)
}

func newPush(g *globals) *cobra.Command {
	var quiet bool
	c := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image to a registry",
		Example: `  berth tag busybox localhost:5000/busybox:v1
  berth push localhost:5000/busybox:v1`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := reference.Parse(args[0])
			if err != nil {
				return err
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := c.ImagePush(cmd.Context(), ref.String(), client.ImagePushOptions{RegistryAuth: registryAuth(ref.Domain())})
			if err != nil {
				return err
			}
			defer resp.Close()
			out := cmd.OutOrStdout()
			pr := newProgress(out, quiet)
			err = pr.stream(resp, nil)
			pr.Close()
			if err != nil {
				return err
			}
			if quiet {
				fmt.Fprintln(out, ref.String())
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	return c
}

func newTag(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short:   "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Example: "  berth tag busybox:latest localhost:5000/tools/busybox:1.36",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := reference.Parse(args[1])
			if err != nil {
				return err
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			_, err = c.ImageTag(cmd.Context(), client.ImageTagOptions{Source: args[0], Target: target.String()})
			return err
		},
	}
}

func newRmi(g *globals) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "rmi [OPTIONS] IMAGE [IMAGE...]",
		Aliases: []string{},
		Short:   "Remove one or more images",
		Example: `  berth rmi busybox
  berth rmi -f 3f57d9401f8d`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRmi(cmd, g, force, args)
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "Force removal of the image")
	return c
}

func runRmi(cmd *cobra.Command, g *globals, force bool, args []string) error {
	c, err := g.client(cmd.Context())
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	var failed []string
	for _, a := range args {
		res, err := c.ImageRemove(cmd.Context(), a, client.ImageRemoveOptions{Force: force, PruneChildren: true})
		if err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "berth: "+strings.TrimPrefix(err.Error(), "Error response from daemon: "))
			failed = append(failed, a)
			continue
		}
		for _, d := range res.Items {
			if d.Untagged != "" {
				fmt.Fprintf(out, "Untagged: %s\n", d.Untagged)
			}
		}
		for _, d := range res.Items {
			if d.Deleted != "" {
				fmt.Fprintf(out, "Deleted: %s\n", d.Deleted)
			}
		}
	}
	if len(failed) > 0 {
		return statusError{code: 1}
	}
	return nil
}

type imagesOptions struct {
	all, digests, quiet, noTrunc bool
	filters                      []string
	format                       string
}

func newImages(g *globals) *cobra.Command {
	var o imagesOptions
	c := &cobra.Command{
		Use:   "images [OPTIONS] [REPOSITORY[:TAG]]",
		Short: "List images",
		Example: `  berth images
  berth images --digests busybox
  berth images -q --filter dangling=true
  berth images --format '{{.Repository}}:{{.Tag}} {{.Size}}'
  berth images --format json`,
		Args: rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImages(cmd, g, o, args)
		},
	}
	f := c.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "Show all images (the build steps' intermediate images too)")
	f.BoolVar(&o.digests, "digests", false, "Show digests")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only show image IDs")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	f.StringArrayVarP(&o.filters, "filter", "f", nil, "Filter output based on conditions provided (dangling=, reference=, label=, before=, since=)")
	f.StringVar(&o.format, "format", "", "Format output using a Go template, 'table', 'table TEMPLATE' or 'json'")
	return c
}

// imageRow is one line of `images`, with Docker's --format field names.
type imageRow struct {
	ID           string `json:"ID"`
	Repository   string `json:"Repository"`
	Tag          string `json:"Tag"`
	Digest       string `json:"Digest"`
	CreatedSince string `json:"CreatedSince"`
	CreatedAt    string `json:"CreatedAt"`
	Size         string `json:"Size"`
	Containers   string `json:"Containers"`
}

// imageFilters are the filters `images` accepts; others are usage errors.
var imageFilters = map[string]bool{"dangling": true, "reference": true, "label": true, "before": true, "since": true, "until": true}

// parseFilters turns --filter key=value flags into the API's filters,
// rejecting keys not in allowed.
func parseFilters(flags []string, allowed map[string]bool) (client.Filters, error) {
	f := client.Filters{}
	for _, s := range flags {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("bad format of filter %q (expected name=value)", s)
		}
		if allowed != nil && !allowed[k] {
			return nil, fmt.Errorf("invalid filter %q", k)
		}
		f.Add(k, v)
	}
	return f, nil
}

func runImages(cmd *cobra.Command, g *globals, o imagesOptions, args []string) error {
	flt, err := parseFilters(o.filters, imageFilters)
	if err != nil {
		return usageError{err}
	}
	if len(args) == 1 {
		if _, err := reference.ParseRepository(args[0]); err != nil {
			return err
		}
		flt.Add("reference", args[0])
	}
	c, err := g.client(cmd.Context())
	if err != nil {
		return err
	}
	list, err := c.ImageList(cmd.Context(), client.ImageListOptions{All: o.all, Filters: flt})
	if err != nil {
		return err
	}
	var rows []imageRow
	seen := map[string]bool{}
	for _, sum := range list.Items {
		id := sum.ID
		if !o.noTrunc {
			id = shortID(sum.ID)
		}
		created := time.Unix(sum.Created, 0)
		base := imageRow{
			ID:           id,
			CreatedSince: since(created),
			CreatedAt:    created.Format("2006-01-02 15:04:05 -0700 MST"),
			Size:         units.HumanSizeWithPrecision(float64(sum.Size), 3),
			Containers:   "N/A",
			Digest:       "<none>",
		}
		if sum.Containers >= 0 {
			base.Containers = fmt.Sprint(sum.Containers)
		}
		for _, r := range imageNames(sum.RepoTags, sum.RepoDigests) {
			if len(args) == 1 && !matchRef(r.ref, args[0]) {
				continue
			}
			row := base
			row.Repository, row.Tag = r.repo, r.tag
			if r.digest != "" {
				row.Digest = r.digest
			}
			if o.quiet {
				if seen[row.ID] {
					continue
				}
				seen[row.ID] = true
			}
			rows = append(rows, row)
		}
	}
	out := cmd.OutOrStdout()
	if o.quiet {
		for _, r := range rows {
			fmt.Fprintln(out, r.ID)
		}
		return nil
	}
	def := "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	if o.digests {
		def = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	}
	headers := map[string]string{"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
		"CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS"}
	items := make([]any, len(rows))
	for i := range rows {
		items[i] = rows[i]
	}
	return render(out, o.format, def, headers, items)
}

// shortID is the 12-hex-digit form of an image or container ID.
func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

type imageName struct {
	repo, tag, digest string
	ref               reference.Reference
}

// imageNames yields the rows Docker shows for an image: one per tag, with
// the repository's digest when known; a repository known only by digest as
// "<none>" tag; a dangling image as <none> <none>.
func imageNames(repoTags, repoDigests []string) []imageName {
	var out []imageName
	digestOf := map[string]string{}
	for _, d := range repoDigests {
		if r, err := reference.ParseRepository(d); err == nil {
			digestOf[r.Name()] = r.Digest().String()
		}
	}
	tagged := map[string]bool{}
	for _, t := range repoTags {
		r, err := reference.ParseRepository(t)
		if err != nil {
			continue // "<none>:<none>" from older daemons
		}
		tagged[r.Name()] = true
		out = append(out, imageName{repo: reference.FamiliarName(r.Name()), tag: r.Tag(), digest: digestOf[r.Name()], ref: r})
	}
	for _, d := range repoDigests {
		r, err := reference.ParseRepository(d)
		if err != nil || tagged[r.Name()] {
			continue
		}
		tagged[r.Name()] = true
		out = append(out, imageName{repo: reference.FamiliarName(r.Name()), tag: "<none>", digest: r.Digest().String(), ref: r})
	}
	if len(out) == 0 {
		out = append(out, imageName{repo: "<none>", tag: "<none>"})
	}
	return out
}

func matchRef(r reference.Reference, arg string) bool {
	if r.IsZero() {
		return false
	}
	want, err := reference.ParseRepository(arg)
	if err != nil {
		return false
	}
	if want.Name() != r.Name() {
		return false
	}
	return want.Tag() == "" || want.Tag() == r.Tag()
}

func since(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	return units.HumanDuration(time.Since(t)) + " ago"
}

func newInspect(g *globals) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Example: `  berth image inspect busybox
  berth image inspect --format '{{.Id}} {{.Config.Cmd}}' busybox`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(cmd, g, "image", format, args)
		},
	}
	c.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template, or 'json'")
	return c
}

func newHistory(g *globals) *cobra.Command {
	var o struct {
		human, quiet, noTrunc bool
		format                string
	}
	c := &cobra.Command{
		Use:     "history [OPTIONS] IMAGE",
		Short:   "Show the history of an image",
		Example: "  berth history busybox\n  berth history --no-trunc --format '{{.CreatedBy}}' busybox",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			hist, err := c.ImageHistory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			type row struct {
				ID, CreatedSince, CreatedAt, CreatedBy, Size, Comment string
			}
			var items []any
			for _, h := range hist.Items {
				created := time.Unix(h.Created, 0)
				r := row{ID: h.ID, CreatedBy: h.CreatedBy, Comment: h.Comment, CreatedSince: since(created), CreatedAt: created.Format(time.RFC3339)}
				if h.ID == "" {
					r.ID = "<missing>"
				}
				if r.ID != "<missing>" && !o.noTrunc {
					r.ID = shortID(h.ID)
				}
				if !o.noTrunc && len(r.CreatedBy) > 45 {
					r.CreatedBy = r.CreatedBy[:44] + "…"
				}
				if o.human {
					r.Size = units.HumanSizeWithPrecision(float64(h.Size), 3)
				} else {
					r.Size = fmt.Sprint(h.Size)
				}
				if o.quiet {
					fmt.Fprintln(cmd.OutOrStdout(), r.ID)
					continue
				}
				items = append(items, r)
			}
			if o.quiet {
				return nil
			}
			headers := map[string]string{"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
			return render(cmd.OutOrStdout(), o.format, "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}", headers, items)
		},
	}
	f := c.Flags()
	f.BoolVarP(&o.human, "human", "H", true, "Print sizes and dates in human readable format")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only show image IDs")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	f.StringVar(&o.format, "format", "", "Format output using a Go template, or 'json'")
	return c
}

func newSave(g *globals) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Long:  "Save writes an OCI image layout that is also a docker-save archive: both `docker load` and OCI tools read it.",
		Example: `  berth save -o busybox.tar busybox
  berth save busybox | gzip > busybox.tar.gz`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				if f, ok := cmd.OutOrStdout().(*os.File); ok && isTerminal(f) {
					return usageError{fmt.Errorf("cowardly refusing to save to a terminal. Use the -o flag or redirect")}
				}
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			save := func(w io.Writer) error {
				r, err := c.ImageSave(cmd.Context(), args)
				if err != nil {
					return err
				}
				defer r.Close()
				_, err = io.Copy(w, r)
				return err
			}
			if output == "" {
				return save(cmd.OutOrStdout())
			}
			// A temp file renamed at the end: an interrupted save never
			// leaves a truncated archive under the name.
			return atomicfile.WriteWith(output, 0o644, save)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return c
}

func newLoad(g *globals) *cobra.Command {
	var input string
	var quiet bool
	c := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load images from a tar archive or STDIN",
		Long:  "Load reads docker-save archives (old and new layouts) and OCI image layout archives, detected by their content, plain or gzip/zstd-compressed.",
		Example: `  berth load -i busybox.tar
  gunzip -c busybox.tar.gz | berth load`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = cmd.InOrStdin()
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return errdefs.NotFound(fmt.Errorf("load: %w", err))
				}
				defer f.Close()
				r = f
			} else if f, ok := r.(*os.File); ok && isTerminal(f) {
				return usageError{fmt.Errorf("requested load from stdin, but stdin is empty")}
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := c.ImageLoad(cmd.Context(), bufio.NewReaderSize(r, 1<<20), client.ImageLoadWithQuiet(quiet))
			if err != nil {
				return err
			}
			defer resp.Close()
			pr := newProgress(cmd.ErrOrStderr(), quiet)
			err = pr.stream(resp, cmd.OutOrStdout())
			pr.Close()
			return err
		},
	}
	c.Flags().StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	return c
}

func newImport(g *globals) *cobra.Command {
	var o struct {
		changes  []string
		message  string
		platform string
	}
	c := &cobra.Command{
		Use:   "import [OPTIONS] file|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Example: `  berth import rootfs.tar busybox:latest
  berth import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' - mybase < rootfs.tar.gz`,
		Args: rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"fromSrc": {"-"}, "changes": o.changes}
			if o.platform != "" {
				plat, err := reference.ParsePlatform(o.platform)
				if err != nil {
					return usageError{err}
				}
				q.Set("platform", plat.String())
			}
			if o.message != "" {
				q.Set("message", o.message)
			}
			// berth's daemon takes the image's creation time from the
			// client's SOURCE_DATE_EPOCH, so imports are reproducible.
			if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
				sec, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return usageError{fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", v)}
				}
				q.Set("created", time.Unix(sec, 0).UTC().Format(time.RFC3339))
			}
			if len(args) == 2 {
				ref, err := reference.Parse(args[1])
				if err != nil {
					return err
				}
				q.Set("repo", ref.Name())
				if ref.Tag() != "" {
					q.Set("tag", ref.Tag())
				}
			}
			var r io.Reader
			if args[0] == "-" {
				r = cmd.InOrStdin()
			} else {
				f, err := os.Open(args[0])
				if err != nil {
					return errdefs.NotFound(fmt.Errorf("import: %w", err))
				}
				defer f.Close()
				r = f
			}
			resp, err := g.raw(cmd.Context(), http.MethodPost, "/images/create", q, bufio.NewReaderSize(r, 1<<20), true)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			// The daemon's last status line is the new image's ID.
			return newProgress(cmd.OutOrStdout(), false).stream(resp.Body, cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringArrayVarP(&o.changes, "change", "c", nil, "Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)")
	f.StringVarP(&o.message, "message", "m", "", "Set commit message for imported image")
	f.StringVar(&o.platform, "platform", "", "Set platform if the tarball is not for this host (os/arch[/variant])")
	return c
}

func newImageCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:     "image COMMAND",
		Short:   "Manage images",
		Example: "  berth image ls\n  berth image prune -a",
		Args:    exactArgs(0),
		RunE:    func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	ls := newImages(g)
	ls.Use = "ls [OPTIONS] [REPOSITORY[:TAG]]"
	ls.Aliases = []string{"list"}
	rm := newRmi(g)
	rm.Use = "rm [OPTIONS] IMAGE [IMAGE...]"
	rm.Aliases = []string{"remove"}
	c.AddCommand(ls, rm, newInspect(g), newPull(g), newPush(g), newTag(g), newHistory(g),
		newSave(g), newLoad(g), newImport(g), newImagePrune(g))
	return c
}

func newImagePrune(g *globals) *cobra.Command {
	var all, force bool
	c := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Long:  "Remove dangling images (with -a, every image no container uses), then every blob and unpacked layer no image references.",
		Example: `  berth image prune
  berth image prune -a -f`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			_ = force // berth never prompts; -f is accepted for scripts written for docker
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			f := client.Filters{}
			f.Add("dangling", strconv.FormatBool(!all))
			res, err := c.ImagePrune(cmd.Context(), client.ImagePruneOptions{Filters: f})
			if err != nil {
				return err
			}
			printImagesDeleted(cmd.OutOrStdout(), res.Report.ImagesDeleted)
			fmt.Fprintf(cmd.OutOrStdout(), "Total reclaimed space: %s\n", units.HumanSizeWithPrecision(float64(res.Report.SpaceReclaimed), 3))
			return nil
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	c.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return c
}

func printImagesDeleted(out io.Writer, items []image.DeleteResponse) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintln(out, "Deleted Images:")
	for _, r := range items {
		if r.Untagged != "" {
			fmt.Fprintf(out, "untagged: %s\n", r.Untagged)
		}
		if r.Deleted != "" {
			fmt.Fprintf(out, "deleted: %s\n", r.Deleted)
		}
	}
	fmt.Fprintln(out)
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// jsonLine writes v as one JSON line.
func jsonLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}
