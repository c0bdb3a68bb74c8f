// Package build runs Dockerfile (Containerfile) builds the way Docker's
// classic builder does: each instruction makes an image from its parent,
// RUN in a container on an overlay snapshot whose upper directory becomes
// the new layer, COPY and ADD by writing into such a container's root file
// system. Dockerfiles are read by BuildKit's own parser and instruction
// package, so syntax and errors are Docker's.
//
// Every step is cached by a content key: the parent image, the expanded
// instruction, the build args and environment in scope, and for COPY and
// ADD the content of every file they read (names, modes, owners, bytes;
// not modification times). A key maps to the image the step made, kept as
// a file under the cache directory, so the cache survives daemon
// restarts; `builder prune` removes it with the step images.
package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/atomicfile"
	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/images"
	"github.com/berth-dev/berth/internal/reference"
)

// Images is what a build needs of the image service.
type Images interface {
	Resolve(ctx context.Context, nameOrID string) (*images.Resolved, error)
	Pull(ctx context.Context, ref string, o images.PullOptions) (images.Image, error)
	Commit(ctx context.Context, o images.CommitOptions) (images.Image, error)
}

// Containers makes the containers steps run in.
type Containers interface {
	NewBuildContainer(ctx context.Context, image string, cfg container.Config, network string) (*engine.BuildContainer, error)
}

// Tagger names the result.
type Tagger interface {
	Tag(ctx context.Context, src string, target reference.Reference) (images.Image, error)
}

// Builder runs builds.
type Builder struct {
	Images     Images
	Containers Containers
	Tags       Tagger
	// CacheDir holds the step cache: one file per key, naming an image.
	CacheDir string
	// TempDir holds a build's scratch files (ADD's downloads); "" is
	// the system's.
	TempDir string
}

// Options are one build's.
type Options struct {
	// ContextDir is the build context, on the daemon's file system.
	ContextDir string
	// Dockerfile is the file's path in the context (default Dockerfile,
	// or Containerfile when only that exists).
	Dockerfile string
	Tags       []string
	BuildArgs  map[string]*string
	Target     string
	NoCache    bool
	Pull       bool
	Labels     map[string]string
	// Network is the RUN containers' network mode ("" for the default).
	Network string
	// Out receives Docker's classic progress text and the steps' output.
	Out io.Writer
}

// Result is a finished build.
type Result struct {
	ID digest.Digest
}

// StepError is a RUN that failed: its command and exit code.
type StepError struct {
	Step     string
	Command  []string
	ExitCode int
}

func (e *StepError) Error() string {
	return fmt.Sprintf("The command '%s' returned a non-zero code: %d", strings.Join(e.Command, " "), e.ExitCode)
}

// stage is one FROM's state while it builds.
type stage struct {
	name  string
	index int
	img   *images.Resolved // nil: scratch, before the first layer
	cfg   v1.Config
	shell []string
	args  map[string]string // ARGs in scope (declared, with values)
	step  int               // the number of its next step
	out   io.Writer
	// cmdSet is whether this stage ran CMD: ENTRYPOINT resets an
	// inherited CMD, not one the stage set (Docker's rule).
	cmdSet bool
}

// empty is whether the stage has no file system yet: scratch, or an image
// of config alone (FROM scratch with ENV, LABEL...).
func (st *stage) empty() bool {
	return st.img == nil || len(st.img.Config.RootFS.DiffIDs) == 0
}

type run struct {
	b      *Builder
	o      Options
	out    io.Writer
	ignore *patternmatcher.PatternMatcher
	// lexMu guards lex: BuildKit's Lex reuses one scanner, and stages
	// build in parallel.
	lexMu   sync.Mutex
	lex     *shell.Lex
	meta    map[string]string // global ARGs (before the first FROM)
	usedMu  sync.Mutex
	used    map[string]bool // build args consumed
	built   map[int]*stageRun
	stages  []instructions.Stage
	steps   int
	epoch   time.Time
	created time.Time
}

// Build runs the Dockerfile in o.ContextDir and tags the result.
func (b *Builder) Build(ctx context.Context, o Options) (Result, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	r := &run{b: b, o: o, out: o.Out, meta: map[string]string{}, used: map[string]bool{}, built: map[int]*stageRun{}}
	if v := o.BuildArgs["SOURCE_DATE_EPOCH"]; v != nil {
		var sec int64
		if _, err := fmt.Sscan(*v, &sec); err != nil || sec < 0 {
			return Result{}, errdefs.Invalidf("build arg SOURCE_DATE_EPOCH=%q: want seconds since 1970", *v)
		}
		r.epoch = time.Unix(sec, 0).UTC()
		r.used["SOURCE_DATE_EPOCH"] = true
	}
	r.created = r.epoch
	for _, t := range o.Tags {
		if _, err := reference.Parse(t); err != nil {
			return Result{}, errdefs.Invalidf("invalid tag %q: %v", t, err)
		}
	}
	if err := r.readIgnore(); err != nil {
		return Result{}, err
	}
	name, src, err := r.dockerfile()
	if err != nil {
		return Result{}, err
	}
	need, err := r.plan(name, src)
	if err != nil {
		return Result{}, err
	}
	for _, i := range need {
		r.steps += 1 + len(r.stages[i].Commands)
	}
	last, err := r.buildStages(ctx, need)
	if err != nil {
		return Result{}, err
	}
	last.out = r.out
	if len(o.Labels) > 0 {
		cfg := last.cfg
		cfg.Labels = maps(cfg.Labels)
		keys := make([]string, 0, len(o.Labels))
		for k, v := range o.Labels {
			cfg.Labels[k] = v
			keys = append(keys, k+"="+v)
		}
		sort.Strings(keys)
		if err := r.commit(ctx, last, cfg, "LABEL "+strings.Join(keys, " "), nil, nil); err != nil {
			return Result{}, err
		}
	}
	var unused []string
	for k := range o.BuildArgs {
		if !r.used[k] && !predefinedArgs[k] {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		fmt.Fprintf(r.out, "[Warning] One or more build-args %v were not consumed\n", unused)
	}
	if last.img == nil {
		return Result{}, errdefs.Invalidf("%s: the build made no image (a scratch stage with no instructions)", name)
	}
	id := last.img.ID
	fmt.Fprintf(r.out, "Successfully built %s\n", images.ShortID(id))
	for _, t := range o.Tags {
		ref, _ := reference.Parse(t)
		if _, err := r.b.Tags.Tag(ctx, id.String(), ref); err != nil {
			return Result{}, fmt.Errorf("tagging %s: %w", t, err)
		}
		fmt.Fprintf(r.out, "Successfully tagged %s\n", ref.Familiar())
	}
	return Result{ID: id}, nil
}

// plan parses the Dockerfile and lists the stages the target needs.
func (r *run) plan(name, src string) ([]int, error) {
	res, err := parser.Parse(strings.NewReader(src))
	if err != nil {
		return nil, errdefs.Invalidf("%s: %v", name, err)
	}
	r.lex = shell.NewLex(res.EscapeToken)
	stages, metaArgs, err := instructions.Parse(res.AST, linter.New(&linter.Config{}))
	if err != nil {
		return nil, errdefs.Invalidf("%s: %v", name, err)
	}
	if len(stages) == 0 {
		return nil, errdefs.Invalidf("%s: no FROM instruction: a Dockerfile must begin with FROM (ARGs may come first)", name)
	}
	r.stages = stages
	// BuildKit's automatic platform args, for Dockerfiles that name them
	// (FROM --platform=$BUILDPLATFORM): the host, the one platform berth
	// builds for.
	host := reference.HostPlatform()
	hostStr := host.OS + "/" + host.Architecture
	if host.Variant != "" {
		hostStr += "/" + host.Variant
	}
	for _, k := range []string{"BUILDPLATFORM", "TARGETPLATFORM"} {
		r.meta[k] = hostStr
	}
	for _, p := range []string{"BUILD", "TARGET"} {
		r.meta[p+"OS"], r.meta[p+"ARCH"], r.meta[p+"VARIANT"] = host.OS, host.Architecture, host.Variant
	}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			scope := make([]string, 0, len(r.meta))
			for k, v := range r.meta {
				scope = append(scope, k+"="+v)
			}
			v, ok := r.argValue(kv, scope)
			if ok {
				r.meta[kv.Key] = v
			}
		}
	}
	target := len(stages) - 1
	if r.o.Target != "" {
		target = slices.IndexFunc(stages, func(s instructions.Stage) bool { return strings.EqualFold(s.Name, r.o.Target) })
		if target < 0 {
			return nil, errdefs.Invalidf("target stage %q could not be found in %s", r.o.Target, name)
		}
	}
	need, err := r.needed(target)
	if err != nil {
		return nil, errdefs.Invalidf("%s: %v", name, err)
	}
	return need, nil
}

// predefinedArgs are Docker's proxy args, usable without an ARG.
var predefinedArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true, "NO_PROXY": true, "no_proxy": true, "ALL_PROXY": true, "all_proxy": true,
}

func cloneSet(m map[string]struct{}) map[string]struct{} {
	if m == nil {
		return nil
	}
	out := make(map[string]struct{}, len(m))
	for k := range m {
		out[k] = struct{}{}
	}
	return out
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// dockerfile reads the Dockerfile from the context: a path that stays in
// it.
func (r *run) dockerfile() (string, string, error) {
	name := r.o.Dockerfile
	if name == "" {
		name = "Dockerfile"
		if _, err := os.Stat(filepath.Join(r.o.ContextDir, name)); err != nil {
			if _, err := os.Stat(filepath.Join(r.o.ContextDir, "Containerfile")); err == nil {
				name = "Containerfile"
			}
		}
	}
	rel, err := contextPath(name)
	if err != nil {
		return "", "", errdefs.Invalidf("Dockerfile %q: %v", name, err)
	}
	// A symlink in the context resolves inside it, not to a host file.
	full, err := securejoin.SecureJoin(r.o.ContextDir, rel)
	if err != nil {
		return "", "", errdefs.Invalidf("Dockerfile %q: %v", name, err)
	}
	b, err := os.ReadFile(full)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", "", errdefs.Invalidf("Cannot locate specified Dockerfile: %s", name)
		}
		return "", "", fmt.Errorf("reading %s: %w", name, err)
	}
	return name, string(b), nil
}

func (r *run) readIgnore() error {
	p, err := securejoin.SecureJoin(r.o.ContextDir, ".dockerignore")
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	pats, err := ignorefile.ReadAll(f)
	if err != nil {
		return errdefs.Invalidf(".dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(pats)
	if err != nil {
		return errdefs.Invalidf(".dockerignore: %v", err)
	}
	r.ignore = pm
	return nil
}

// OutsideDockerfile is the context name the berth CLI gives a Dockerfile
// from outside the context (or stdin); COPY never sees it.
const OutsideDockerfile = ".berth-dockerfile"

// ignored reports whether .dockerignore excludes a context path.
func (r *run) ignored(rel string) bool {
	if rel == OutsideDockerfile {
		return true
	}
	if r.ignore == nil || rel == "." {
		return false
	}
	m, err := r.ignore.MatchesOrParentMatches(rel)
	return err == nil && m
}

// contextPath cleans a path of the build context; ../ may not leave it.
func contextPath(p string) (string, error) {
	c := path.Clean("/" + filepath.ToSlash(p))
	if strings.HasPrefix(path.Clean(filepath.ToSlash(p)), "../") || path.Clean(filepath.ToSlash(p)) == ".." {
		return "", fmt.Errorf("forbidden path outside the build context: %s", p)
	}
	return strings.TrimPrefix(c, "/"), nil
}

// needed lists the stages the target depends on, in order.
func (r *run) needed(target int) ([]int, error) {
	seen := map[int]bool{}
	var visit func(i int) error
	visit = func(i int) error {
		if seen[i] {
			return nil
		}
		seen[i] = true
		if _, err := r.expandMeta(r.stages[i].BaseName); err != nil {
			return fmt.Errorf("FROM %s: %w", r.stages[i].BaseName, err)
		}
		for _, j := range r.deps(i) {
			if err := visit(j); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(target); err != nil {
		return nil, err
	}
	var out []int
	for i := range r.stages {
		if seen[i] {
			out = append(out, i)
		}
	}
	return out, nil
}

// stageIndex finds an earlier stage by name or number, or -1.
func (r *run) stageIndex(name string, before int) int {
	for j := 0; j < before; j++ {
		if r.stages[j].Name != "" && strings.EqualFold(r.stages[j].Name, name) {
			return j
		}
		if fmt.Sprint(j) == name {
			return j
		}
	}
	return -1
}

// expand substitutes variables in word from env (K=V).
func (r *run) expand(word string, env []string) (string, error) {
	r.lexMu.Lock()
	defer r.lexMu.Unlock()
	w, _, err := r.lex.ProcessWord(word, shell.EnvsFromSlice(env))
	return w, err
}

func (r *run) expandMeta(word string) (string, error) {
	env := make([]string, 0, len(r.meta))
	for k, v := range r.meta {
		env = append(env, k+"="+v)
	}
	return r.expand(word, env)
}

// argValue is an ARG's value: the build arg, else its default expanded
// (once) against scope. ok is false for an ARG with neither.
func (r *run) argValue(kv instructions.KeyValuePairOptional, scope []string) (string, bool) {
	if v, ok := r.o.BuildArgs[kv.Key]; ok && v != nil {
		r.usedMu.Lock()
		r.used[kv.Key] = true
		r.usedMu.Unlock()
		return *v, true
	}
	if kv.Value == nil {
		return "", false
	}
	w, err := r.expand(*kv.Value, scope)
	if err != nil {
		return *kv.Value, true
	}
	return w, true
}

func (r *run) header(st *stage, text string) {
	fmt.Fprintf(st.out, "Step %d/%d : %s\n", st.step, r.steps, text)
	st.step++
}

// buildStage runs one FROM and its instructions.
func (r *run) buildStage(ctx context.Context, i int, firstStep int, out io.Writer) (*stage, error) {
	s := r.stages[i]
	st := &stage{name: s.Name, index: i, args: map[string]string{}, shell: []string{"/bin/sh", "-c"}, step: firstStep, out: out}
	r.header(st, s.SourceCode)
	base, err := r.expandMeta(s.BaseName)
	if err != nil {
		return nil, errdefs.Invalidf("FROM %s: %v", s.BaseName, err)
	}
	if s.Platform != "" {
		pf, err := r.expandMeta(s.Platform)
		if err != nil {
			return nil, errdefs.Invalidf("FROM --platform=%s: %v", s.Platform, err)
		}
		want, err := reference.ParsePlatform(pf)
		if err != nil {
			return nil, errdefs.Invalidf("FROM --platform=%s: %v", s.Platform, err)
		}
		if want.Normalize() != reference.HostPlatform() {
			return nil, errdefs.Invalidf("FROM --platform=%s: berth builds for the host platform (%s) only", pf, r.meta["BUILDPLATFORM"])
		}
	}
	switch j := r.stageIndex(base, i); {
	case j >= 0:
		prev := r.stageResult(j)
		st.img, st.cfg = prev.img, prev.cfg
		if prev.img == nil {
			fmt.Fprintln(st.out, " ---> scratch")
		}
	case strings.EqualFold(base, "scratch"):
		fmt.Fprintln(st.out, " ---> scratch")
	default:
		img, err := r.baseImage(ctx, st.out, base)
		if err != nil {
			return nil, err
		}
		st.img = img
		st.cfg = img.Config.Config
	}
	if st.img != nil {
		fmt.Fprintf(st.out, " ---> %s\n", images.ShortID(st.img.ID))
		if len(st.cfg.Shell) > 0 {
			st.shell = st.cfg.Shell
		}
	}
	// Global ARGs are visible in a stage only once declared again.
	triggers := st.cfg.OnBuild
	st.cfg.OnBuild = nil
	for _, t := range triggers {
		fmt.Fprintf(st.out, "# Executing 1 build trigger\n")
		res, err := parser.Parse(strings.NewReader(t))
		if err != nil || len(res.AST.Children) != 1 {
			return nil, errdefs.Invalidf("ONBUILD trigger %q of %s: %v", t, base, err)
		}
		cmd, err := instructions.ParseInstruction(res.AST.Children[0])
		if err != nil {
			return nil, errdefs.Invalidf("ONBUILD trigger %q of %s: %v", t, base, err)
		}
		if err := r.dispatch(ctx, st, cmd, false); err != nil {
			return nil, err
		}
	}
	for _, c := range s.Commands {
		if err := r.dispatch(ctx, st, c, true); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// baseImage finds FROM's image: in the store, pulled when missing or with
// --pull.
func (r *run) baseImage(ctx context.Context, out io.Writer, name string) (*images.Resolved, error) {
	if _, err := reference.Parse(name); err != nil {
		return nil, errdefs.Invalidf("FROM %s: invalid image reference: %v", name, err)
	}
	if !r.o.Pull {
		img, err := r.b.Images.Resolve(ctx, name)
		if err == nil {
			return img, nil
		}
		if !errdefs.IsNotFound(err) {
			return nil, err
		}
	}
	fmt.Fprintf(out, "Pulling %s\n", name)
	if _, err := r.b.Images.Pull(ctx, name, images.PullOptions{}); err != nil {
		return nil, fmt.Errorf("FROM %s: the base image is not in the store and pulling it failed: %w", name, err)
	}
	return r.b.Images.Resolve(ctx, name)
}

// env is the environment a step sees: the image's, then ARGs not set by
// ENV (as Docker, ENV wins).
func (st *stage) env() []string {
	env := slices.Clone(st.cfg.Env)
	keys := make([]string, 0, len(st.args))
	for k := range st.args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.ContainsFunc(env, func(e string) bool { n, _, _ := strings.Cut(e, "="); return shell.EqualEnvKeys(n, k) }) {
			env = append(env, k+"="+st.args[k])
		}
	}
	return env
}

// dispatch runs one instruction.
func (r *run) dispatch(ctx context.Context, st *stage, cmd any, counted bool) error {
	code := fmt.Sprint(cmd)
	if c, ok := cmd.(interface{ String() string }); ok {
		code = c.String()
	}
	if counted {
		r.header(st, code)
	}
	if e, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		// RUN is expanded by its shell; ARG's default by argValue, once.
		_, isRun := cmd.(*instructions.RunCommand)
		_, isArg := cmd.(*instructions.ArgCommand)
		if !isRun && !isArg {
			env := st.env()
			err := e.Expand(func(word string) (string, error) { return r.expand(word, env) })
			if err != nil {
				return errdefs.Invalidf("%s: %v", code, err)
			}
		}
	}
	cfg := st.cfg
	switch c := cmd.(type) {
	case *instructions.ArgCommand:
		for _, kv := range c.Args {
			v, ok := r.argValue(kv, st.env())
			if !ok {
				if g, isGlobal := r.meta[kv.Key]; isGlobal {
					v, ok = g, true
				}
			}
			if ok {
				st.args[kv.Key] = v
			}
		}
		// ARG changes no image, but the cache key of later steps.
		fmt.Fprintf(st.out, " ---> %s\n", r.shortID(st))
		return nil
	case *instructions.ShellCommand:
		st.shell = slices.Clone(c.Shell)
		cfg.Shell = slices.Clone(c.Shell)
	case *instructions.CmdCommand:
		cfg.Cmd = st.commandLine(c.ShellDependantCmdLine)
		st.cmdSet = true
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = st.commandLine(c.ShellDependantCmdLine)
		if !st.cmdSet {
			cfg.Cmd = nil // as Docker: ENTRYPOINT resets an inherited CMD
		}
	case *instructions.MaintainerCommand:
		// Deprecated; the author field is not kept.
	case *instructions.RunCommand:
		return r.runStep(ctx, st, c, code)
	case *instructions.CopyCommand:
		if len(c.ExcludePatterns) > 0 {
			return errdefs.Invalidf("%s: COPY --exclude is not supported by berth's builder yet", code)
		}
		if c.Parents {
			return errdefs.Invalidf("%s: COPY --parents is not supported by berth's builder yet", code)
		}
		return r.copyStep(ctx, st, code, copySpec{sd: c.SourcesAndDest, from: c.From, chown: c.Chown, chmod: c.Chmod})
	case *instructions.AddCommand:
		if len(c.ExcludePatterns) > 0 {
			return errdefs.Invalidf("%s: ADD --exclude is not supported by berth's builder yet", code)
		}
		if c.KeepGitDir != nil {
			return errdefs.Invalidf("%s: ADD --keep-git-dir: berth's builder does not add git sources", code)
		}
		cs := copySpec{sd: c.SourcesAndDest, chown: c.Chown, chmod: c.Chmod, add: true, unpack: c.Unpack == nil || *c.Unpack}
		if c.Checksum != "" {
			d, err := digest.Parse(c.Checksum)
			if err != nil {
				return errdefs.Invalidf("%s: --checksum=%s: %v", code, c.Checksum, err)
			}
			cs.checksum = d
		}
		return r.copyStep(ctx, st, code, cs)
	case *instructions.WorkdirCommand:
		if err := images.ApplyInstruction(&cfg, c); err != nil {
			return errdefs.Invalidf("%s: %v", code, err)
		}
		return r.workdirStep(ctx, st, cfg, code)
	default:
		// The config's maps and slices are shared with the parent stage
		// or image (and with stages building beside this one): copy
		// what an instruction may change.
		cfg.Labels = maps(cfg.Labels)
		cfg.Env = slices.Clone(cfg.Env)
		cfg.ExposedPorts = cloneSet(cfg.ExposedPorts)
		cfg.Volumes = cloneSet(cfg.Volumes)
		cfg.OnBuild = slices.Clone(cfg.OnBuild)
		if err := images.ApplyInstruction(&cfg, c); err != nil {
			return errdefs.Invalidf("%s: %v", code, err)
		}
	}
	return r.commit(ctx, st, cfg, "/bin/sh -c #(nop) "+code, nil, nil)
}

func (st *stage) commandLine(l instructions.ShellDependantCmdLine) []string {
	if l.PrependShell {
		return append(slices.Clone(st.shell), l.CmdLine...)
	}
	return l.CmdLine
}

func (r *run) shortID(st *stage) string {
	if st.img == nil {
		return "scratch"
	}
	return images.ShortID(st.img.ID)
}

// key is a step's cache key.
func (r *run) key(st *stage, createdBy string, extra []byte) string {
	h := sha256.New()
	parent := "scratch"
	if st.img != nil {
		parent = st.img.ID.String()
	}
	fmt.Fprintf(h, "berth-build-v1\nparent %s\nstep %s\n", parent, createdBy)
	for _, e := range st.env() {
		fmt.Fprintf(h, "env %s\n", e)
	}
	fmt.Fprintf(h, "user %s\nworkdir %s\nepoch %d\n", st.cfg.User, st.cfg.WorkingDir, r.epoch.Unix())
	h.Write(extra)
	return hex.EncodeToString(h.Sum(nil))
}

// cached looks a key up: the image it made, if it still exists.
func (r *run) cached(ctx context.Context, key string) *images.Resolved {
	if r.o.NoCache || r.b.CacheDir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(r.b.CacheDir, key))
	if err != nil {
		return nil
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return nil
	}
	img, err := r.b.Images.Resolve(ctx, d.String())
	if err != nil {
		return nil
	}
	return img
}

// hit moves the stage onto the image the cache has for key, if any.
func (r *run) hit(ctx context.Context, st *stage, key string) bool {
	img := r.cached(ctx, key)
	if img == nil {
		return false
	}
	fmt.Fprintf(st.out, " ---> Using cache\n ---> %s\n", images.ShortID(img.ID))
	st.img, st.cfg = img, img.Config.Config
	return true
}

// commit makes the step's image (with layer, if not nil) unless the cache
// has it, and moves the stage onto it.
func (r *run) commit(ctx context.Context, st *stage, cfg v1.Config, createdBy string, extra []byte, layer func(context.Context) (func(io.Writer) error, func(), error)) error {
	key := r.key(st, createdBy, extra)
	if r.hit(ctx, st, key) {
		return nil
	}
	o := images.CommitOptions{Parent: st.img, Config: cfg, CreatedBy: createdBy, Created: r.created, BuildCache: true}
	if layer != nil {
		write, done, err := layer(ctx)
		if err != nil {
			return err
		}
		defer done()
		o.Layer = write
	}
	img, err := r.b.Images.Commit(ctx, o)
	if err != nil {
		return fmt.Errorf("%s: %w", createdBy, err)
	}
	res, err := r.b.Images.Resolve(ctx, img.ID.String())
	if err != nil {
		return err
	}
	if r.b.CacheDir != "" {
		if err := os.MkdirAll(r.b.CacheDir, 0o700); err == nil {
			_ = atomicfile.WriteFile(filepath.Join(r.b.CacheDir, key), []byte(img.ID.String()+"\n"), 0o600)
		}
	}
	fmt.Fprintf(st.out, " ---> %s\n", images.ShortID(img.ID))
	st.img, st.cfg = res, res.Config.Config
	return nil
}

// ClearCache forgets every cache key (the step images go with
// images.PruneBuildCache).
func (b *Builder) ClearCache() error {
	if b.CacheDir == "" {
		return nil
	}
	if err := os.RemoveAll(b.CacheDir); err != nil {
		return fmt.Errorf("clearing the build cache: %w", err)
	}
	return nil
}
