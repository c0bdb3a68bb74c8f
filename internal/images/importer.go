package images

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/reference"
	"github.com/berth-dev/berth/internal/snapshots"
)

// ImportOptions are the options of Import.
type ImportOptions struct {
	// Ref names the image (name[:tag], the tag defaulting to latest); ""
	// leaves it untagged.
	Ref string
	// Changes are Dockerfile instructions applied to the image config, as
	// `docker import --change` takes them; see AllowedChanges.
	Changes []string
	// Message is the comment of the image's history entry.
	Message string
	// Platform is the image's OS and architecture; zero means the host.
	Platform reference.Platform
	// Created is the image's creation time; zero means now. The CLI sets
	// it from SOURCE_DATE_EPOCH, so the same tarball gives the same image.
	Created time.Time
}

// AllowedChanges are the instructions ImportOptions.Changes may hold: those
// Docker allows in `docker import --change`, and STOPSIGNAL.
var AllowedChanges = []string{"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}

// Import makes a one-layer image from a root file system tarball (plain,
// gzip or zstd), like `docker import`. The layer is stored gzip-compressed;
// its diffID and digest are computed in the same pass that compresses it.
// The image has an OCI manifest and config; the config's created time is
// now and its settings come from opts.Changes.
func (s *Service) Import(ctx context.Context, r io.Reader, opts ImportOptions) (Image, error) {
	var ref reference.Reference
	if opts.Ref != "" {
		var err error
		if ref, err = reference.Parse(opts.Ref); err != nil {
			return Image{}, fmt.Errorf("importing: %w", err)
		}
		if ref.Digest() != "" {
			return Image{}, errdefs.Invalidf("importing: %s: cannot name an image with a digest", opts.Ref)
		}
	}
	lease, err := s.lease(ctx)
	if err != nil {
		return Image{}, err
	}
	defer lease.Unlock()
	p := opts.Platform
	if p == (reference.Platform{}) {
		p = reference.HostPlatform()
	}
	p = p.Normalize()
	cfg := v1.ConfigFile{Architecture: p.Architecture, OS: p.OS, Variant: p.Variant, RootFS: v1.RootFS{Type: "layers"}}
	if err := applyChanges(&cfg.Config, opts.Changes); err != nil {
		return Image{}, fmt.Errorf("importing: %w", err)
	}

	layer, diffID, err := s.storeLayer(ctx, func(w io.Writer) error {
		_, err := io.Copy(w, cancelReader{ctx, r})
		return err
	})
	if err != nil {
		return Image{}, fmt.Errorf("importing: %w", err)
	}

	now := v1.Time{Time: opts.Created}
	if now.IsZero() {
		now.Time = time.Now().UTC()
	}
	h, err := v1.NewHash(diffID.String())
	if err != nil {
		return Image{}, fmt.Errorf("importing: %w", err)
	}
	cfg.Created = now
	cfg.RootFS.DiffIDs = []v1.Hash{h}
	cfg.History = []v1.History{{Created: now, CreatedBy: "import", Comment: opts.Message}}
	rec := Image{}
	if !ref.IsZero() {
		rec.RepoTags = []string{ref.String()}
	}
	out, err := s.putImage(ctx, cfg, []ocispec.Descriptor{layer}, rec)
	if err != nil {
		return Image{}, fmt.Errorf("importing: %w", err)
	}
	return out, nil
}

// compressLayer reads a tar stream (plain, gzip or zstd) from r, unpacks it
// into the layer ingest in and, in the same pass, writes it gzip-compressed
// to file dst. It returns the layer's descriptor (digest of the compressed
// bytes) and diffID (digest of the uncompressed ones).
func compressLayer(ctx context.Context, r io.Reader, dst string, in *snapshots.Ingest) (ocispec.Descriptor, digest.Digest, error) {
	dr, _, err := archive.Decompress(cancelReader{ctx, r})
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer dr.Close()
	f, err := os.Create(dst)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer f.Close()
	compressed, uncompressed := digest.Canonical.Digester(), digest.Canonical.Digester()
	cw := &sizeWriter{w: io.MultiWriter(f, compressed.Hash())}
	gz := gzip.NewWriter(cw)
	tee := io.TeeReader(dr, io.MultiWriter(gz, uncompressed.Hash()))
	n, err := archive.Apply(ctx, in.Dir, tee)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	// Apply stops at the end-of-archive blocks; whatever follows belongs
	// to the layer too.
	m, err := io.Copy(io.Discard, tee)
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("reading the tarball: %w", err)
	}
	in.Size = n + m
	if err := gz.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := f.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: compressed.Digest(), Size: cw.n}, uncompressed.Digest(), nil
}

// sizeWriter counts the bytes written through it.
type sizeWriter struct {
	w io.Writer
	n int64
}

func (c *sizeWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// cancelReader stops reading once ctx is done.
type cancelReader struct {
	ctx context.Context
	r   io.Reader
}

func (c cancelReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// applyChanges applies Dockerfile instructions to c, in order, as Docker's
// import does: each is parsed by BuildKit's Dockerfile parser (so quoting,
// JSON versus shell form and line continuations read exactly as in a
// Dockerfile), and its words are expanded against the ENV set so far.
func applyChanges(c *v1.Config, changes []string) error {
	for _, ch := range changes {
		if strings.TrimSpace(ch) == "" {
			continue
		}
		res, err := parser.Parse(strings.NewReader(ch))
		if err != nil {
			return errdefs.Invalidf("--change %q: %v", ch, err)
		}
		lex := shell.NewLex(res.EscapeToken)
		for _, node := range res.AST.Children {
			name := strings.ToUpper(node.Value)
			if !slices.Contains(AllowedChanges, name) {
				return errdefs.Invalidf("--change %q: %s is not allowed in an import (allowed: %s)", ch, name, strings.Join(AllowedChanges, ", "))
			}
			inst, err := instructions.ParseInstruction(node)
			if err != nil {
				return errdefs.Invalidf("--change %q: %v", ch, err)
			}
			if e, ok := inst.(instructions.SupportsSingleWordExpansion); ok {
				env := shell.EnvsFromSlice(c.Env)
				err := e.Expand(func(word string) (string, error) {
					w, _, err := lex.ProcessWord(word, env)
					return w, err
				})
				if err != nil {
					return errdefs.Invalidf("--change %q: %v", ch, err)
				}
			}
			if err := applyChange(c, inst); err != nil {
				return errdefs.Invalidf("--change %q: %v", ch, err)
			}
		}
	}
	return nil
}

// defaultShell runs the shell form of CMD and ENTRYPOINT, as in Docker.
var defaultShell = []string{"/bin/sh", "-c"}

// ApplyInstruction applies one parsed, expanded Dockerfile instruction
// that sets the image config (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK,
// LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR) to c.
func ApplyInstruction(c *v1.Config, inst any) error { return applyChange(c, inst) }

func applyChange(c *v1.Config, inst any) error {
	switch in := inst.(type) {
	case *instructions.CmdCommand:
		c.Cmd = commandLine(in.ShellDependantCmdLine)
	case *instructions.EntrypointCommand:
		c.Entrypoint = commandLine(in.ShellDependantCmdLine)
	case *instructions.EnvCommand:
		for _, kv := range in.Env {
			c.Env = setEnv(c.Env, kv.Key, kv.Value)
		}
	case *instructions.ExposeCommand:
		for _, p := range in.Ports {
			ports, err := exposedPorts(p)
			if err != nil {
				return err
			}
			if c.ExposedPorts == nil {
				c.ExposedPorts = map[string]struct{}{}
			}
			for _, port := range ports {
				c.ExposedPorts[port] = struct{}{}
			}
		}
	case *instructions.HealthCheckCommand:
		h := in.Health
		if h == nil {
			return fmt.Errorf("HEALTHCHECK without a check")
		}
		c.Healthcheck = &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	case *instructions.LabelCommand:
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for _, kv := range in.Labels {
			c.Labels[kv.Key] = kv.Value
		}
	case *instructions.OnbuildCommand:
		c.OnBuild = append(c.OnBuild, in.Expression)
	case *instructions.StopSignalCommand:
		if !validSignal(in.Signal) {
			return fmt.Errorf("invalid signal %q", in.Signal)
		}
		c.StopSignal = in.Signal
	case *instructions.UserCommand:
		c.User = in.User
	case *instructions.VolumeCommand:
		if c.Volumes == nil {
			c.Volumes = map[string]struct{}{}
		}
		for _, v := range in.Volumes {
			c.Volumes[v] = struct{}{}
		}
	case *instructions.WorkdirCommand:
		// A relative WORKDIR is relative to the previous one, as in a build.
		w := in.Path
		if !path.IsAbs(w) {
			w = path.Join("/", c.WorkingDir, w)
		}
		c.WorkingDir = path.Clean(w)
	default:
		return fmt.Errorf("%T is not supported", inst)
	}
	return nil
}

func commandLine(l instructions.ShellDependantCmdLine) []string {
	if l.PrependShell {
		return append(slices.Clone(defaultShell), l.CmdLine...)
	}
	return l.CmdLine
}

// SetEnv sets key=value in env, replacing an earlier value of key.
func SetEnv(env []string, key, value string) []string { return setEnv(env, key, value) }

// setEnv sets key=value in env, replacing an earlier value of key.
func setEnv(env []string, key, value string) []string {
	kv := key + "=" + value
	for i, e := range env {
		if k, _, _ := strings.Cut(e, "="); shell.EqualEnvKeys(k, key) {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

// exposedPorts reads an EXPOSE argument: PORT[-END][/PROTO], the protocol
// tcp (the default), udp or sctp. A range gives each of its ports.
func exposedPorts(spec string) ([]string, error) {
	ports, proto, _ := strings.Cut(spec, "/")
	proto = strings.ToLower(proto)
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("EXPOSE %s: protocol %q, want tcp, udp or sctp", spec, proto)
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	if !isRange {
		hi = lo
	}
	first, err1 := strconv.ParseUint(lo, 10, 16)
	last, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || first == 0 || last < first {
		return nil, fmt.Errorf("EXPOSE %s: invalid port or range %q", spec, ports)
	}
	var out []string
	for p := first; p <= last; p++ {
		out = append(out, fmt.Sprintf("%d/%s", p, proto))
	}
	return out, nil
}

// validSignal accepts what Docker's STOPSIGNAL does: a number, or a name
// with or without SIG (SIGTERM, TERM, SIGRTMIN+3).
func validSignal(s string) bool {
	if n, err := strconv.Atoi(s); err == nil {
		return n > 0 && n < 65
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if unix.SignalNum(name) != 0 {
		return true
	}
	for _, base := range []string{"SIGRTMIN+", "SIGRTMAX-"} {
		if rest, ok := strings.CutPrefix(name, base); ok {
			n, err := strconv.Atoi(rest)
			return err == nil && n >= 0 && n <= 30
		}
	}
	return name == "SIGRTMIN" || name == "SIGRTMAX"
}
