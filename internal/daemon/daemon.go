// Package daemon wires berth's subsystems into the long-running engine
// behind the API socket: the image service, volumes, runtimes, the
// container engine and the Docker API server, in that order, by hand.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/atomicfile"
	"github.com/berth-dev/berth/internal/build"
	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/dockerapi"
	"github.com/berth-dev/berth/internal/embedbin"
	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/events"
	"github.com/berth-dev/berth/internal/images"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/remote"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/libct"
	"github.com/berth-dev/berth/internal/volumes"
)

// Defaults for a machine's one daemon; tests run others beside it with
// their own paths.
const (
	DefaultRoot     = "/var/lib/berth"
	DefaultExecRoot = "/run/berth"
	DefaultHost     = "unix:///run/berth/berth.sock"
)

// Options configure Run.
type Options struct {
	Root, ExecRoot string
	// Host is where the API listens: unix:///path.
	Host string
	// DefaultRuntime overrides the config's: "berth", "runc", a configured
	// name, or the path of a runtime binary.
	DefaultRuntime string
	// Group may read and write the socket besides root; "" means "berth"
	// when that group exists, else root only.
	Group      string
	ConfigPath string
	Version    string
	LogLevel   string
}

// Daemon is the wired engine. Run builds and serves one.
type Daemon struct {
	Images  *images.Service
	Volumes *volumes.Store
	Engine  *engine.Engine
	API     *dockerapi.Server
	Events  *events.Log
	lock    *atomicfile.Lock
}

// Run starts the daemon and serves until ctx is done. Containers keep
// running when it returns: their shims own them.
func Run(ctx context.Context, o Options) error {
	d, err := New(ctx, o)
	if err != nil {
		return err
	}
	defer d.lock.Unlock()
	l, err := listen(o.Host, o.Group)
	if err != nil {
		return err
	}
	slog.Info("berth daemon serving", "host", o.Host, "root", o.Root, "exec-root", o.ExecRoot)
	total, running, _, _ := d.Engine.ContainerCounts()
	slog.Info("containers restored", "total", total, "running", running)
	err = d.API.Serve(ctx, l)
	// Containers, their addresses and rules stay; DNS by name pauses until
	// the next daemon starts.
	d.Engine.StopDNS()
	if m := d.Engine.NetworkManager(); m != nil {
		_ = m.Close()
	}
	// Last: anything published after Close is dropped.
	_ = d.Events.Close()
	if path, ok := unixPath(o.Host); ok {
		_ = os.Remove(path)
	}
	return err
}

// New builds the daemon's subsystems over o.Root and o.ExecRoot and
// restores existing containers. It does not listen.
func New(ctx context.Context, o Options) (*Daemon, error) {
	if o.Root == "" {
		o.Root = DefaultRoot
	}
	if o.ExecRoot == "" {
		o.ExecRoot = DefaultExecRoot
	}
	for _, p := range []*string{&o.Root, &o.ExecRoot} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return nil, err
		}
		*p = abs
		if err := os.MkdirAll(abs, 0o711); err != nil {
			return nil, fmt.Errorf("creating %s: %w", abs, err)
		}
	}
	lock, ok, err := atomicfile.TryAcquire(filepath.Join(o.Root, "daemon.lock"))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errdefs.Conflict(fmt.Errorf("another berth daemon is using %s", o.Root))
	}
	fail := func(err error) (*Daemon, error) {
		lock.Unlock()
		return nil, err
	}
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		return fail(err)
	}
	rc := remote.New(remote.Options{Mirrors: cfg.RegistryMirrors, Insecure: cfg.InsecureRegistries, UserAgent: "berth/" + o.Version})
	svc, err := images.New(o.Root, rc)
	if err != nil {
		return fail(err)
	}
	vols, err := volumes.New(o.Root)
	if err != nil {
		return fail(err)
	}
	shimExe, err := embedbin.Install(filepath.Join(o.ExecRoot, "bin"), "berth-shim", embedbin.Shim)
	if err != nil {
		return fail(err)
	}
	runtimeExe, err := embedbin.Install(filepath.Join(o.ExecRoot, "bin"), "berth-runtime", embedbin.Runtime)
	if err != nil {
		return fail(err)
	}
	runtimes, def, err := setupRuntimes(o, cfg, runtimeExe)
	if err != nil {
		return fail(err)
	}
	evlog, err := events.Open(filepath.Join(o.Root, "events"), 0)
	if err != nil {
		return fail(fmt.Errorf("opening the event log: %w", err))
	}
	nets, err := setupNetworks(ctx, o, cfg)
	if err != nil {
		evlog.Close()
		return fail(err)
	}
	eng, err := engine.New(engine.Options{
		Root: o.Root, ExecRoot: o.ExecRoot, Images: svc, Volumes: vols,
		Runtimes: runtimes, DefaultRuntime: def, InitPath: cfg.InitPath, Exe: shimExe,
		Networks: nets, Events: evlog,
	})
	if err != nil {
		return fail(err)
	}
	if err := eng.Load(ctx); err != nil {
		return fail(fmt.Errorf("restoring containers: %w", err))
	}
	svc.Pinned = eng.PinnedLayers
	// Contexts and downloads of builds a killed daemon was running.
	if err := os.RemoveAll(filepath.Join(o.Root, "build", "tmp")); err != nil {
		slog.Warn("removing old build files failed", "err", err)
	}
	vols.InUse = eng.VolumeInUse
	// What a killed pull or unpack left behind; the daemon owns the store,
	// so nothing else is writing now.
	if _, err := svc.GC(ctx, images.GCOptions{IfIdle: true}); err != nil {
		slog.Warn("cleaning the image store at start failed", "err", err)
	}
	paths := make(map[string]string, len(runtimes))
	for n, rt := range runtimes {
		paths[n] = rt.Path
	}
	api := dockerapi.New(dockerapi.Options{
		Images: svc, Volumes: vols, Containers: eng, Usage: eng,
		Version: o.Version, Root: o.Root, DefaultRuntime: def, Runtimes: paths,
		Events: evlog,
		Builder: &build.Builder{Images: svc, Containers: eng, Tags: svc.Records,
			CacheDir: filepath.Join(o.Root, "build", "cache"), TempDir: filepath.Join(o.Root, "build", "tmp")},
	})
	return &Daemon{Images: svc, Volumes: vols, Engine: eng, API: api, Events: evlog, lock: lock}, nil
}

// setupNetworks opens the bridge network manager, unless the config turns
// bridge networking off.
func setupNetworks(ctx context.Context, o Options, cfg config.Config) (*network.Manager, error) {
	if cfg.Bridge == "none" {
		return nil, nil
	}
	nc := network.Config{
		Root:          filepath.Join(o.Root, "network"),
		ExecRoot:      filepath.Join(o.ExecRoot, "netns"),
		DefaultBridge: cfg.Bridge,
	}
	if cfg.BridgeSubnet != "" {
		p, err := netip.ParsePrefix(cfg.BridgeSubnet)
		if err != nil {
			return nil, errdefs.Invalidf("config bridge-subnet %q: %v", cfg.BridgeSubnet, err)
		}
		nc.DefaultSubnet = p
	}
	if cfg.DefaultAddressPool != "" {
		p, err := netip.ParsePrefix(cfg.DefaultAddressPool)
		if err != nil {
			return nil, errdefs.Invalidf("config default-address-pool %q: %v", cfg.DefaultAddressPool, err)
		}
		nc.Pool = p
	}
	m, err := network.New(ctx, nc)
	if err != nil {
		return nil, fmt.Errorf("setting up networks: %w", err)
	}
	return m, nil
}

// TeardownNetworks removes every network of a stopped daemon's root:
// bridges, iptables rules and network namespaces (containers' networks
// outlive the daemon otherwise). Scripts and uninstalls use it.
func TeardownNetworks(ctx context.Context, o Options) error {
	if o.Root == "" {
		o.Root = DefaultRoot
	}
	if o.ExecRoot == "" {
		o.ExecRoot = DefaultExecRoot
	}
	root := filepath.Join(o.Root, "network")
	if _, err := os.Stat(root); err != nil {
		return nil // no daemon ever made a network here
	}
	lock, ok, err := atomicfile.TryAcquire(filepath.Join(o.Root, "daemon.lock"))
	if err != nil {
		return err
	}
	if !ok {
		return errdefs.Conflict(fmt.Errorf("a berth daemon is using %s: stop it first", o.Root))
	}
	defer lock.Unlock()
	m, err := network.New(ctx, network.Config{Root: root, ExecRoot: filepath.Join(o.ExecRoot, "netns")})
	if err != nil {
		return err
	}
	return m.Destroy(ctx)
}

// setupRuntimes makes the runtime table: the embedded one, runc when
// installed, and the config's; it returns the default's name.
func setupRuntimes(o Options, cfg config.Config, embeddedExe string) (map[string]*runtime.Runtime, string, error) {
	state := func(name string) string { return filepath.Join(o.ExecRoot, "runtime", name) }
	emb, err := runtime.Embedded(state("berth"), embeddedExe)
	if err != nil {
		return nil, "", err
	}
	emb.StartFunc = func(_ context.Context, id string) error { return libct.Start(state("berth"), id) }
	rts := map[string]*runtime.Runtime{"berth": emb}
	if p, err := exec.LookPath("runc"); err == nil {
		rts["runc"] = runtime.External("runc", p, state("runc"))
	}
	for name, rc := range cfg.Runtimes {
		rt := runtime.External(name, rc.Path, state(name))
		rt.Args = append(slices.Clone(rc.Args), rt.Args...)
		rts[name] = rt
	}
	def := o.DefaultRuntime
	if def == "" {
		def = cfg.DefaultRuntime
	}
	if def == "" {
		def = "berth"
	}
	if strings.Contains(def, "/") {
		name := filepath.Base(def)
		if _, err := os.Stat(def); err != nil {
			return nil, "", errdefs.Invalidf("runtime %s: %v", def, err)
		}
		rts[name] = runtime.External(name, def, state(name))
		def = name
	}
	if _, ok := rts[def]; !ok {
		return nil, "", errdefs.Invalidf("runtime %q is not available (have: %s)", def, strings.Join(slices.Sorted(mapKeys(rts)), ", "))
	}
	return rts, def, nil
}

func mapKeys(m map[string]*runtime.Runtime) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func unixPath(host string) (string, bool) {
	u, err := url.Parse(host)
	if err != nil || u.Scheme != "unix" {
		return "", false
	}
	return u.Path, true
}

// listen opens the API socket: mode 0660, owned by root and the berth
// group when it exists. A stale socket (nothing answers) is replaced; a
// live one means another daemon serves it.
func listen(host, group string) (net.Listener, error) {
	path, ok := unixPath(host)
	if !ok || path == "" {
		return nil, errdefs.Invalidf("host %q: only unix:///path sockets are supported", host)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, errdefs.Conflict(fmt.Errorf("another daemon is serving %s", path))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	// No moment with a socket others could open.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	gid := 0
	if group == "" {
		group = "berth"
	}
	if g, err := user.LookupGroup(group); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}
	if err := os.Chown(path, 0, gid); err != nil {
		l.Close()
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
