package engine

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/archive"
)

// LabelBuildStep marks the containers a build runs its steps in.
const LabelBuildStep = "berth.build.step"

// BuildContainer is a container a build step runs in (RUN) or writes into
// (COPY, ADD, WORKDIR): made from the step's parent image, its changes
// read back as a layer from its upper directory, then removed.
type BuildContainer struct {
	e *Engine
	c *Container
}

// NewBuildContainer creates (without starting) a container from image for
// a build step. cfg holds the step's command, environment, user and
// working directory; network is "none", "host" or a network name.
func (e *Engine) NewBuildContainer(ctx context.Context, image string, cfg container.Config, network string) (*BuildContainer, error) {
	cfg.Image = image
	cfg.Labels = map[string]string{LabelBuildStep: "1"}
	cfg.Healthcheck = &container.HealthConfig{Test: []string{"NONE"}}
	cfg.AttachStdout, cfg.AttachStderr = true, true
	if cfg.Entrypoint == nil {
		cfg.Entrypoint = []string{} // the step's command runs as given
	}
	hc := &container.HostConfig{NetworkMode: container.NetworkMode(network)}
	c, _, err := e.Create(ctx, CreateOptions{Config: &cfg, HostConfig: hc})
	if err != nil {
		return nil, err
	}
	return &BuildContainer{e: e, c: c}, nil
}

// ID is the container's ID.
func (b *BuildContainer) ID() string { return b.c.ID }

// WithRootfs calls fn with the host path of the container's mounted root
// file system, for a step that writes files into it.
func (b *BuildContainer) WithRootfs(ctx context.Context, fn func(rootfs string) error) error {
	return b.e.withRootfs(ctx, b.c, fn)
}

// Run starts the container, copies its output to out and returns its exit
// code once it has ended. ctx ending kills it.
func (b *BuildContainer) Run(ctx context.Context, out io.Writer) (int, error) {
	ready := make(chan struct{})
	attached := make(chan error, 1)
	go func() {
		attached <- b.e.Attach(ctx, b.c.ID, AttachOptions{Stdout: out, Stderr: out, Stream: true, Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-attached:
		return -1, err
	}
	if err := b.e.Start(ctx, b.c.ID); err != nil {
		return -1, err
	}
	stop := context.AfterFunc(ctx, func() { _ = b.e.Kill(context.WithoutCancel(ctx), b.c.ID, "KILL") })
	defer stop()
	code, err := b.e.Wait(context.WithoutCancel(ctx), b.c.ID, container.WaitConditionNotRunning, nil)
	<-attached // the output is complete once the attach ends
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	return code, err
}

// WriteDiff writes the container's changes to its image as an OCI layer
// tar: the overlay upper directory, whiteouts converted, entries sorted,
// times capped at clamp when set.
func (b *BuildContainer) WriteDiff(ctx context.Context, w io.Writer, clamp time.Time) error {
	upper := filepath.Join(b.c.dir, "rw", "upper")
	// The runtime makes empty mount points for the files berth binds in
	// when the image lacks them: not the step's changes.
	skip := func(rel string, dir bool) bool {
		switch rel {
		case "etc/hosts", "etc/hostname", "etc/resolv.conf":
			fi, err := os.Lstat(filepath.Join(upper, rel))
			return err == nil && fi.Mode().IsRegular() && fi.Size() == 0
		}
		return false
	}
	return archive.WriteTree(ctx, w, upper, archive.TreeOptions{Overlay: true, Clamp: clamp, Skip: skip})
}

// Remove deletes the container and its file system.
func (b *BuildContainer) Remove(ctx context.Context) error {
	return b.e.Remove(context.WithoutCancel(ctx), b.c.ID, RemoveOptions{Force: true})
}

// removeBuildLeftovers removes, at daemon start, the step containers of
// builds the previous daemon was running when it died: their builds are
// gone with its API connections.
func (e *Engine) removeBuildLeftovers(ctx context.Context) {
	for _, c := range e.all() {
		c.mu.Lock()
		step := c.Config.Labels[LabelBuildStep] != ""
		c.mu.Unlock()
		if !step {
			continue
		}
		slog.Info("removing a build step container left by a killed daemon", "id", shortID(c.ID))
		if err := e.Remove(ctx, c.ID, RemoveOptions{Force: true}); err != nil {
			slog.Warn("removing a leftover build step container failed", "id", shortID(c.ID), "err", err)
		}
	}
}
