package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/images"
	"github.com/berth-dev/berth/internal/logs"
	"github.com/berth-dev/berth/internal/runtime"
)

// CreateOptions are the body of POST /containers/create.
type CreateOptions struct {
	Name       string
	Config     *container.Config
	HostConfig *container.HostConfig
	Networking *network.NetworkingConfig
	Platform   string
}

// Create makes a container from an image; it does not start it. Nothing
// is visible until the record is written, so a crash or a full disk leaves
// at most a directory that Load removes.
func (e *Engine) Create(ctx context.Context, o CreateOptions) (*Container, []string, error) {
	if o.Config == nil {
		return nil, nil, errdefs.Invalidf("config cannot be empty in order to create a container")
	}
	cfg := *o.Config
	hc := container.HostConfig{}
	if o.HostConfig != nil {
		hc = *o.HostConfig
	}
	if cfg.Image == "" {
		return nil, nil, errdefs.Invalidf("no image specified")
	}
	img, err := e.o.Images.Resolve(ctx, cfg.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, nil, errdefs.NotFoundf("No such image: %s", cfg.Image)
		}
		return nil, nil, err
	}
	warnings, err := e.validate(&cfg, &hc)
	if err != nil {
		return nil, nil, err
	}
	nets, netWarnings, err := e.validateNetwork(&cfg, &hc, o.Networking)
	if err != nil {
		return nil, nil, err
	}
	warnings = append(warnings, netWarnings...)
	mergeImageConfig(&cfg, img)
	// After the merge: the image's labels and HEALTHCHECK count too.
	if err := validateRestart(hc.RestartPolicy, cfg.Labels); err != nil {
		return nil, nil, err
	}
	if _, _, _, err := probes(&cfg); err != nil {
		return nil, nil, err
	}
	if len(cfg.Entrypoint) == 0 && len(cfg.Cmd) == 0 {
		return nil, nil, errdefs.Invalidf("no command specified")
	}

	e.mu.Lock()
	id := newID()
	for e.shortIDTakenLocked(id) {
		id = newID()
	}
	name, err := e.reserveNameLocked(o.Name, id)
	e.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	c := newContainer(e.containerDir(id), e.runDir(id))
	c.ID, c.Name, c.Created = id, name, time.Now().UTC()
	c.Image, c.Layers = img.ID, images.DiffIDs(img.Config)
	c.Platform = img.Config.OS
	c.Config, c.HostConfig = &cfg, &hc
	c.Networks = nets
	c.noteLocked(TimelineEntry{Time: c.Created, Event: "created"})
	if cfg.Hostname == "" && !hc.NetworkMode.IsHost() {
		cfg.Hostname = id[:12]
	}
	argv := append(slices.Clone(cfg.Entrypoint), cfg.Cmd...)
	c.Path, c.Args = argv[0], argv[1:]
	c.Runtime = hc.Runtime
	if c.Runtime == "" {
		c.Runtime = e.o.DefaultRuntime
	}
	c.State.Status = container.StateCreated

	fail := func(err error) (*Container, []string, error) {
		e.mu.Lock()
		delete(e.names, name)
		e.mu.Unlock()
		e.cleanupFiles(id)
		return nil, nil, err
	}
	// The upper directory's mode becomes the mode of the container's /.
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{c.dir, 0o710}, {filepath.Join(c.dir, "rw"), 0o700}, {filepath.Join(c.dir, "rw", "upper"), 0o755}, {filepath.Join(c.dir, "rw", "work"), 0o700}} {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			return fail(fmt.Errorf("creating container %s: %w", shortID(id), err))
		}
		if err := os.Chmod(d.path, d.mode); err != nil { // umask
			return fail(fmt.Errorf("creating container %s: %w", shortID(id), err))
		}
	}
	mounts, err := e.resolveMounts(ctx, c, img)
	if err != nil {
		return fail(err)
	}
	c.Mounts = mounts
	if err := c.saveLocked(); err != nil {
		return fail(err)
	}
	e.mu.Lock()
	e.containers[id] = c
	e.mu.Unlock()
	if err := e.ensureVolumes(ctx, mounts); err != nil {
		_ = e.Remove(context.WithoutCancel(ctx), id, RemoveOptions{Force: true, Volumes: true})
		return nil, nil, err
	}
	e.publish(eventContainer, "create", c, nil)
	return c, warnings, nil
}

// validate checks what Create can check before anything is made, and
// fills defaults.
func (e *Engine) validate(cfg *container.Config, hc *container.HostConfig) ([]string, error) {
	var warnings []string
	switch hc.LogConfig.Type {
	case "", "json-file":
		hc.LogConfig.Type = "json-file"
	default:
		return nil, errdefs.Invalidf("logging driver %q is not supported: berth writes json-file logs", hc.LogConfig.Type)
	}
	if _, err := logs.ParseOptions(hc.LogConfig.Config); err != nil {
		return nil, err
	}
	if hc.Runtime != "" {
		if _, ok := e.o.Runtimes[hc.Runtime]; !ok {
			return nil, errdefs.Invalidf("unknown or invalid runtime name: %s", hc.Runtime)
		}
	}
	if hc.RestartPolicy.Name != "" && hc.RestartPolicy.Name != "no" && hc.AutoRemove {
		return nil, errdefs.Invalidf("can't create 'AutoRemove' container with restart policy")
	}
	if hc.Init != nil && *hc.Init && e.o.InitPath == "" {
		return nil, errdefs.Invalidf("--init needs a static init binary: install Debian's tini package (/usr/bin/tini-static)")
	}
	if cfg.StopSignal != "" {
		if _, err := runtime.ParseSignal(cfg.StopSignal); err != nil {
			return nil, err
		}
	}
	if hc.Memory > 0 && hc.Memory < 6*1024*1024 {
		return nil, errdefs.Invalidf("Minimum memory limit allowed is 6MB")
	}
	return warnings, nil
}

// mergeImageConfig fills what the user left out from the image, as
// Docker does at create time.
func mergeImageConfig(cfg *container.Config, img *images.Resolved) {
	ic := img.Config.Config
	if cfg.User == "" {
		cfg.User = ic.User
	}
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = ic.WorkingDir
	}
	if len(cfg.Entrypoint) == 0 {
		cfg.Entrypoint = ic.Entrypoint
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = ic.Cmd
		}
	}
	// Image environment first; the user's values win per key.
	env := slices.Clone(ic.Env)
	for _, kv := range cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		env = slices.DeleteFunc(env, func(x string) bool { ik, _, _ := strings.Cut(x, "="); return ik == k })
		env = append(env, kv)
	}
	cfg.Env = env
	if len(ic.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range ic.Labels {
			labels[k] = v
		}
		for k, v := range cfg.Labels {
			labels[k] = v
		}
		cfg.Labels = labels
	}
	if cfg.StopSignal == "" {
		cfg.StopSignal = ic.StopSignal
	}
	if len(ic.Volumes) > 0 {
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for v := range ic.Volumes {
			cfg.Volumes[v] = struct{}{}
		}
	}
	if len(cfg.Shell) == 0 {
		cfg.Shell = ic.Shell
	}
	if len(ic.ExposedPorts) > 0 && cfg.ExposedPorts == nil {
		cfg.ExposedPorts = network.PortSet{}
		for p := range ic.ExposedPorts {
			if pp, err := network.ParsePort(p); err == nil {
				cfg.ExposedPorts[pp] = struct{}{}
			}
		}
	}
	// The image's HEALTHCHECK fills what the container leaves zero (an
	// empty test inherits it), as in Docker.
	if ih := ic.Healthcheck; ih != nil {
		if cfg.Healthcheck == nil {
			cfg.Healthcheck = &container.HealthConfig{}
		}
		h := cfg.Healthcheck
		if len(h.Test) == 0 {
			h.Test = ih.Test
		}
		if h.Interval == 0 {
			h.Interval = ih.Interval
		}
		if h.Timeout == 0 {
			h.Timeout = ih.Timeout
		}
		if h.StartPeriod == 0 {
			h.StartPeriod = ih.StartPeriod
		}
		if h.Retries == 0 {
			h.Retries = ih.Retries
		}
	}
}

func (e *Engine) shortIDTakenLocked(id string) bool {
	for other := range e.containers {
		if shortID(other) == shortID(id) {
			return true
		}
	}
	return false
}

// cleanupFiles removes what a container left on disk (not mounts).
func (e *Engine) cleanupFiles(id string) {
	_ = os.RemoveAll(e.containerDir(id))
	_ = os.RemoveAll(e.runDir(id))
}
