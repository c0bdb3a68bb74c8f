package cli

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/build"
)

type buildOptions struct {
	tags, buildArgs, labels []string
	file, target, iidfile   string
	network                 string
	noCache, pull, quiet    bool
}

func newBuild(g *globals) *cobra.Command {
	var o buildOptions
	c := &cobra.Command{
		Use:   "build [OPTIONS] PATH | -",
		Short: "Build an image from a Dockerfile",
		Long: `Build an image from a Dockerfile (or Containerfile) and a context: a
directory, or - for a tar of one on standard input. The daemon runs each
instruction as Docker's classic builder does, caching every step by what
it reads (files by content, not by time), so a rebuild with nothing
changed makes nothing new and gives the same image ID.`,
		Example: `  berth build -t app .
  berth build -f build/Dockerfile --build-arg VERSION=1.2 --target runtime -t app:1.2 .
  tar -c . | berth build -t app -`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runBuild(cmd, g, o, args[0]) },
	}
	f := c.Flags()
	f.StringArrayVarP(&o.tags, "tag", "t", nil, "Name and optionally a tag in the name:tag format")
	f.StringVarP(&o.file, "file", "f", "", "Name of the Dockerfile (default PATH/Dockerfile, or PATH/Containerfile)")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "Set build-time variables (KEY=VALUE, or KEY to take it from the environment)")
	f.StringVar(&o.target, "target", "", "Set the target build stage to build")
	f.BoolVar(&o.noCache, "no-cache", false, "Do not use cache when building the image")
	f.BoolVar(&o.pull, "pull", false, "Always attempt to pull a newer version of the base images")
	f.StringArrayVar(&o.labels, "label", nil, "Set metadata for an image (KEY=VALUE)")
	f.StringVar(&o.iidfile, "iidfile", "", "Write the image ID to the file")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress the build output and print image ID on success")
	f.StringVar(&o.network, "network", "", "Networking mode for the RUN instructions (default: the default bridge)")
	return c
}

func newBuilderCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "builder", Short: "Manage builds", Example: "  berth builder prune"}
	prune := &cobra.Command{
		Use:     "prune [OPTIONS]",
		Short:   "Remove build cache",
		Long:    "Remove the build cache: every build step's image that nothing names and no container uses, and every cache key.",
		Example: "  berth builder prune\n  berth builder prune -f",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res struct {
				CachesDeleted  []string
				SpaceReclaimed int64
			}
			resp, err := g.raw(cmd.Context(), http.MethodPost, "/build/prune", nil, nil, false)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
				return fmt.Errorf("builder prune: reading the daemon's answer: %w", err)
			}
			for _, id := range res.CachesDeleted {
				fmt.Fprintf(cmd.OutOrStdout(), "Deleted build cache objects:\n%s\n", id)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Total reclaimed space: %s\n", humanSize(res.SpaceReclaimed))
			return nil
		},
	}
	prune.Flags().BoolP("force", "f", false, "Do not prompt for confirmation")
	prune.Flags().BoolP("all", "a", false, "Remove all unused build cache (the same here)")
	c.AddCommand(prune)
	return c
}

func runBuild(cmd *cobra.Command, g *globals, o buildOptions, contextArg string) error {
	q := url.Values{}
	for _, t := range o.tags {
		q.Add("t", t)
	}
	args := map[string]*string{}
	for _, a := range o.buildArgs {
		k, v, ok := strings.Cut(a, "=")
		if k == "" {
			return usageError{fmt.Errorf("--build-arg %q: want KEY=VALUE", a)}
		}
		if !ok {
			ev, set := os.LookupEnv(k)
			if !set {
				continue // as Docker: an unset variable is no build arg
			}
			v = ev
		}
		args[k] = &v
	}
	if len(args) > 0 {
		b, _ := json.Marshal(args)
		q.Set("buildargs", string(b))
	}
	if len(o.labels) > 0 {
		m := map[string]string{}
		for _, l := range o.labels {
			k, v, _ := strings.Cut(l, "=")
			if k == "" {
				return usageError{fmt.Errorf("--label %q: want KEY=VALUE", l)}
			}
			m[k] = v
		}
		b, _ := json.Marshal(m)
		q.Set("labels", string(b))
	}
	for k, v := range map[string]string{"target": o.target, "networkmode": o.network} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for k, v := range map[string]bool{"nocache": o.noCache, "pull": o.pull, "q": o.quiet} {
		if v {
			q.Set(k, "1")
		}
	}

	var body io.Reader
	if contextArg == "-" {
		if o.file != "" && o.file != "-" {
			q.Set("dockerfile", o.file)
		}
		body = cmd.InOrStdin()
	} else {
		fi, err := os.Stat(contextArg)
		if err != nil || !fi.IsDir() {
			return fmt.Errorf("unable to prepare context: path %q not found or not a directory", contextArg)
		}
		pr, pw := io.Pipe()
		name, extra, err := dockerfileFor(contextArg, o.file)
		if err != nil {
			return err
		}
		if name != "" {
			q.Set("dockerfile", name)
		}
		go func() { pw.CloseWithError(tarContext(cmd, pw, contextArg, name, extra)) }()
		defer pr.Close()
		body = pr
	}
	resp, err := g.raw(cmd.Context(), http.MethodPost, "/build", q, body, false)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var id string
	var tail []byte
	dec := json.NewDecoder(resp.Body)
	out := cmd.OutOrStdout()
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("reading the build's progress: %w", err)
		}
		if m.Error != nil {
			if o.quiet && len(tail) > 0 {
				// Quiet hid the output: show the failing step's end.
				cmd.ErrOrStderr().Write(tail)
			}
			return errors.New(m.Error.Message)
		}
		if m.Aux != nil {
			var aux struct{ ID string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
		if m.Stream != "" && !o.quiet {
			io.WriteString(out, m.Stream)
		}
		if m.Stream != "" && o.quiet {
			tail = append(tail, m.Stream...)
			if len(tail) > 2048 {
				tail = tail[len(tail)-2048:]
			}
		}
		if m.Status != "" && !o.quiet {
			fmt.Fprintln(out, m.Status)
		}
	}
	if id == "" {
		return errors.New("the build ended without an image ID")
	}
	if o.quiet {
		fmt.Fprintln(out, id)
	}
	if o.iidfile != "" {
		if err := os.WriteFile(o.iidfile, []byte(id), 0o644); err != nil {
			return fmt.Errorf("--iidfile: %w", err)
		}
	}
	return nil
}

// dockerfileFor resolves -f: a path in the context is sent as its
// relative name; one outside it is added to the tar under a fixed name.
func dockerfileFor(dir, file string) (name string, extra []byte, err error) {
	if file == "" {
		return "", nil, nil
	}
	if file == "-" {
		b, err := io.ReadAll(os.Stdin)
		return build.OutsideDockerfile, b, err
	}
	absDir, _ := filepath.Abs(dir)
	absFile, _ := filepath.Abs(file)
	if rel, err := filepath.Rel(absDir, absFile); err == nil && !strings.HasPrefix(rel, "..") {
		return filepath.ToSlash(rel), nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", nil, fmt.Errorf("reading the Dockerfile: %w", err)
	}
	return build.OutsideDockerfile, b, nil
}

// tarContext sends the context directory, without what .dockerignore
// excludes (the Dockerfile, named or default, and .dockerignore always
// go: the daemon reads them, and applies .dockerignore to COPY itself).
func tarContext(cmd *cobra.Command, w io.Writer, dir, dockerfile string, extra []byte) error {
	var pm *patternmatcher.PatternMatcher
	if f, err := os.Open(filepath.Join(dir, ".dockerignore")); err == nil {
		pats, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return fmt.Errorf(".dockerignore: %w", err)
		}
		if pm, err = patternmatcher.New(pats); err != nil {
			return fmt.Errorf(".dockerignore: %w", err)
		}
	}
	skip := func(rel string, isDir bool) bool {
		if pm == nil || rel == "Dockerfile" || rel == "Containerfile" || rel == ".dockerignore" || (dockerfile != "" && rel == dockerfile) {
			return false
		}
		m, err := pm.MatchesOrParentMatches(rel)
		if err != nil || !m {
			return false
		}
		return !isDir // a directory may hold exceptions, or the named Dockerfile
	}
	if extra == nil {
		return archive.WriteTree(cmd.Context(), w, dir, archive.TreeOptions{Skip: skip})
	}
	// The context, then the outside Dockerfile: one stream, re-framed.
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.WriteTree(cmd.Context(), pw, dir, archive.TreeOptions{Skip: skip})) }()
	defer pr.Close()
	tw := tar.NewWriter(w)
	if err := archive.CopyEntries(tw, tar.NewReader(pr), nil); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: build.OutsideDockerfile, Mode: 0o600, Size: int64(len(extra))}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, bytes.NewReader(extra)); err != nil {
		return err
	}
	return tw.Close()
}
