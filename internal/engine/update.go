package engine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/spec"
)

// Update changes a container's resource limits and restart policy, live
// when it runs (docker update).
func (e *Engine) Update(ctx context.Context, ref string, u container.UpdateConfig) ([]string, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	hc := *c.HostConfig
	r := &hc.Resources
	n := u.Resources
	if n.Memory != 0 {
		if n.Memory < 6*1024*1024 {
			return nil, errdefs.Invalidf("Minimum memory limit allowed is 6MB")
		}
		r.Memory = n.Memory
	}
	if n.MemorySwap != 0 {
		r.MemorySwap = n.MemorySwap
	}
	if n.MemoryReservation != 0 {
		r.MemoryReservation = n.MemoryReservation
	}
	if n.NanoCPUs != 0 {
		r.NanoCPUs = n.NanoCPUs
	}
	if n.CPUShares != 0 {
		r.CPUShares = n.CPUShares
	}
	if n.CPUQuota != 0 {
		r.CPUQuota = n.CPUQuota
	}
	if n.CPUPeriod != 0 {
		r.CPUPeriod = n.CPUPeriod
	}
	if n.CpusetCpus != "" {
		r.CpusetCpus = n.CpusetCpus
	}
	if n.CpusetMems != "" {
		r.CpusetMems = n.CpusetMems
	}
	if n.PidsLimit != nil {
		r.PidsLimit = n.PidsLimit
	}
	if n.BlkioWeight != 0 {
		r.BlkioWeight = n.BlkioWeight
	}
	if u.RestartPolicy.Name != "" {
		if err := validateRestart(u.RestartPolicy, c.Config.Labels); err != nil {
			return nil, err
		}
		if hc.AutoRemove && u.RestartPolicy.Name != "no" {
			return nil, errdefs.Invalidf("Restart policy cannot be updated because AutoRemove is enabled for the container")
		}
		hc.RestartPolicy = u.RestartPolicy
	}
	if c.State.running() {
		rt, err := e.runtimeFor(c)
		if err != nil {
			return nil, err
		}
		res, err := spec.Resources(&hc)
		if err != nil {
			return nil, err
		}
		if err := rt.Update(ctx, c.ID, res); err != nil {
			return nil, fmt.Errorf("updating the limits of %s: %w", shortID(c.ID), err)
		}
	}
	c.HostConfig = &hc
	if err := c.saveLocked(); err != nil {
		return nil, err
	}
	return nil, nil
}

// Top lists the container's processes with the host's ps, as Docker does.
func (e *Engine) Top(ctx context.Context, ref, psArgs string) (*container.TopResponse, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	running := c.State.running()
	c.mu.Unlock()
	if !running {
		return nil, errdefs.Conflict(fmt.Errorf("container %s is not running", c.ID))
	}
	rt, err := e.runtimeFor(c)
	if err != nil {
		return nil, err
	}
	pids, err := rt.Ps(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	if psArgs == "" {
		psArgs = "-ef"
	}
	out, err := exec.CommandContext(ctx, "ps", strings.Fields(psArgs)...).Output()
	if err != nil {
		return nil, fmt.Errorf("running ps %s: %w", psArgs, err)
	}
	return parsePS(out, pids)
}

// parsePS keeps the rows of ps output whose PID column is one of pids.
func parsePS(out []byte, pids []int) (*container.TopResponse, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	if !sc.Scan() {
		return nil, fmt.Errorf("ps printed nothing")
	}
	titles := strings.Fields(sc.Text())
	col := slices.Index(titles, "PID")
	if col < 0 {
		return nil, errdefs.Invalidf("ps output has no PID column; use ps options that print it")
	}
	r := &container.TopResponse{Titles: titles, Processes: [][]string{}}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) <= col {
			continue
		}
		pid, err := strconv.Atoi(f[col])
		if err != nil || !slices.Contains(pids, pid) {
			continue
		}
		// The last column (the command) may contain spaces.
		if len(f) > len(titles) {
			f = append(f[:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
		}
		r.Processes = append(r.Processes, f)
	}
	return r, nil
}
