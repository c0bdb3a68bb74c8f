package dockerapi

import (
	"bufio"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/api/types/volume"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/images"
)

func (s *Server) version(w http.ResponseWriter, r *http.Request) error {
	kernel := kernelVersion()
	details := map[string]string{
		"ApiVersion":    MaxVersion,
		"MinAPIVersion": MinVersion,
		"GoVersion":     runtime.Version(),
		"Os":            runtime.GOOS,
		"Arch":          runtime.GOARCH,
		"KernelVersion": kernel,
		"Experimental":  "false",
	}
	writeJSON(w, http.StatusOK, system.VersionResponse{
		Platform:      system.PlatformInfo{Name: "berth"},
		Version:       s.Version,
		APIVersion:    MaxVersion,
		MinAPIVersion: MinVersion,
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		GoVersion:     runtime.Version(),
		KernelVersion: kernel,
		Components:    []system.ComponentVersion{{Name: "Engine", Version: s.Version, Details: details}},
	})
	return nil
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	recs, err := s.Images.Records.List(ctx)
	if err != nil {
		return err
	}
	info := system.Info{
		ID:                 s.ID,
		Images:             len(recs),
		Driver:             "overlayfs",
		DriverStatus:       [][2]string{{"driver-type", "berth overlay snapshots"}},
		Plugins:            system.PluginsInfo{Volume: []string{"local"}, Network: []string{"bridge", "host", "none"}, Log: []string{"json-file"}},
		MemoryLimit:        true,
		CPUCfsPeriod:       true,
		CPUCfsQuota:        true,
		CPUShares:          true,
		CPUSet:             true,
		PidsLimit:          true,
		IPv4Forwarding:     ipv4Forwarding(),
		NGoroutines:        runtime.NumGoroutine(),
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		LoggingDriver:      "json-file",
		CgroupDriver:       "cgroupfs",
		CgroupVersion:      cgroupVersion(),
		KernelVersion:      kernelVersion(),
		OperatingSystem:    osRelease("PRETTY_NAME"),
		OSVersion:          osRelease("VERSION_ID"),
		OSType:             "linux",
		Architecture:       machine(),
		IndexServerAddress: "https://index.docker.io/v1/",
		RegistryConfig: &registry.ServiceConfig{
			IndexConfigs: map[string]*registry.IndexInfo{
				"docker.io": {Name: "docker.io", Secure: true, Official: true, Mirrors: []string{}},
			},
			Mirrors: []string{},
		},
		NCPU:               runtime.NumCPU(),
		MemTotal:           memTotal(),
		DockerRootDir:      s.Root,
		Name:               hostname(),
		Labels:             []string{},
		ServerVersion:      s.Version,
		Runtimes:           map[string]system.RuntimeWithStatus{},
		DefaultRuntime:     s.DefaultRuntime,
		Swarm:              swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
		LiveRestoreEnabled: true, // containers run under their own shim
		Isolation:          "",
		SecurityOptions:    []string{"name=seccomp,profile=builtin"},
		CDISpecDirs:        []string{},
		Warnings:           []string{},
	}
	for name, path := range s.Runtimes {
		info.Runtimes[name] = system.RuntimeWithStatus{Runtime: system.Runtime{Path: path}}
	}
	if s.Usage != nil {
		info.Containers, info.ContainersRunning, info.ContainersPaused, info.ContainersStopped = s.Usage.ContainerCounts()
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func kernelVersion() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func machine() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return runtime.GOARCH
	}
	return unix.ByteSliceToString(u.Machine[:])
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func memTotal() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

// cgroupVersion is "2" when /sys/fs/cgroup is the unified hierarchy, "1"
// otherwise (v1, or hybrid with v1 controllers, as on this project's CI).
func cgroupVersion() string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "2"
	}
	return "1"
}

func ipv4Forwarding() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// osRelease reads a key of /etc/os-release, as dockerd does for
// OperatingSystem and OSVersion.
func osRelease(key string) string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		if key == "PRETTY_NAME" {
			return "Linux"
		}
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && k == key {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// diskUsageResponse is /system/df up to API 1.51 (newer versions moved
// to ImagesUsage and friends, which system.DiskUsage describes).
type diskUsageResponse struct {
	LayersSize int64
	Images     []image.Summary
	Containers []container.Summary
	Volumes    []volume.Volume
	BuildCache []build.CacheRecord
}

func (s *Server) diskUsage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	want := map[string]bool{}
	for _, t := range r.Form["type"] {
		switch t {
		case "image", "container", "volume", "build-cache":
			want[t] = true
		default:
			return errdefs.Invalidf("unknown object type: %s", t)
		}
	}
	all := len(want) == 0
	out := diskUsageResponse{Images: []image.Summary{}, Containers: []container.Summary{}, Volumes: []volume.Volume{}, BuildCache: []build.CacheRecord{}}
	if all || want["image"] {
		sums, err := s.Images.List(ctx, nil)
		if err != nil {
			return err
		}
		// A layer shared by several images counts once in LayersSize
		// and in each image's SharedSize.
		users := map[digest.Digest]int{}
		layers := map[digest.Digest][]digest.Digest{}
		for _, sum := range sums {
			res, err := s.Images.Resolve(ctx, sum.ID.String())
			if err != nil {
				continue // damaged; listed without shared size
			}
			layers[sum.ID] = images.DiffIDs(res.Config)
			for _, d := range layers[sum.ID] {
				users[d]++
			}
		}
		for d := range users {
			if n, err := s.Images.Layers.Size(d); err == nil {
				out.LayersSize += n
			}
		}
		for _, sum := range sums {
			is := summary(sum)
			is.Containers = 0
			if s.imageInUse(sum.ID) {
				is.Containers = 1
			}
			for _, d := range layers[sum.ID] {
				if users[d] > 1 {
					if n, err := s.Images.Layers.Size(d); err == nil {
						is.SharedSize += n
					}
				}
			}
			out.Images = append(out.Images, is)
		}
	}
	if (all || want["container"]) && s.Usage != nil {
		cs, err := s.Usage.ContainerDiskUsage(ctx)
		if err != nil {
			return err
		}
		out.Containers = append(out.Containers, cs...)
	}
	if all || want["volume"] {
		vs, err := s.volumeList(ctx, nil, true)
		if err != nil {
			return err
		}
		out.Volumes = vs
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) imageInUse(id digest.Digest) bool {
	return s.Usage != nil && s.Usage.ImageInUse(id)
}

// auth checks credentials against a registry, as `docker login` asks the
// daemon to; storing them is the client's business.
func (s *Server) auth(w http.ResponseWriter, r *http.Request) error {
	var cfg registry.AuthConfig
	if err := DecodeJSON(r, &cfg); err != nil {
		return err
	}
	host := registryHost(cfg.ServerAddress)
	if err := s.Images.Remote.Login(r.Context(), host, cfg.Username, cfg.Password); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, registry.AuthResponse{Status: "Login Succeeded"})
	return nil
}

// registryHost turns a login server address ("", "https://index.docker.io/v1/",
// "localhost:5000") into the registry host berth's client uses.
func registryHost(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	s, _, _ = strings.Cut(s, "/")
	switch s {
	case "", "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return s
}

// berthRoutes are berth's own endpoints, for `berth system check` and
// `berth system gc` against a daemon.
func (s *Server) berthRoutes(mux *http.ServeMux) {
	mux.Handle("POST /berth/v1/system/check", route(s.systemCheck))
	mux.Handle("POST /berth/v1/images/gc", route(s.imagesGC))
	if s.Containers != nil {
		mux.Handle("GET /berth/v1/containers/{id}/timeline", route(s.containerTimeline))
	}
}

// containerTimeline answers a container's lifecycle timeline (created,
// started, exits with reasons, restarts, health changes), oldest first.
func (s *Server) containerTimeline(w http.ResponseWriter, r *http.Request) error {
	tl, err := s.Containers.Timeline(r.PathValue("id"))
	if err != nil {
		return err
	}
	if tl == nil {
		tl = []engine.TimelineEntry{}
	}
	writeJSON(w, http.StatusOK, tl)
	return nil
}

// CheckProblem is one problem /berth/v1/system/check found.
type CheckProblem struct {
	Object string `json:"object"`
	Error  string `json:"error"`
}

// CheckResponse is the answer of /berth/v1/system/check.
type CheckResponse struct {
	Problems []CheckProblem `json:"problems"`
	Repaired bool           `json:"repaired"`
}

func (s *Server) systemCheck(w http.ResponseWriter, r *http.Request) error {
	repair := BoolValue(r, "repair")
	probs, err := s.Images.Check(r.Context(), repair)
	if err != nil {
		return err
	}
	out := CheckResponse{Problems: []CheckProblem{}, Repaired: repair}
	for _, p := range probs {
		out.Problems = append(out.Problems, CheckProblem{Object: p.What, Error: p.Err.Error()})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// GCResponse is the answer of /berth/v1/images/gc.
type GCResponse struct {
	Blobs     int   `json:"blobs"`
	Layers    int   `json:"layers"`
	Ingests   int   `json:"ingests"`
	Reclaimed int64 `json:"reclaimed"`
}

func (s *Server) imagesGC(w http.ResponseWriter, r *http.Request) error {
	res, err := s.Images.GC(r.Context(), images.GCOptions{Ingests: BoolValue(r, "ingests")})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, GCResponse{Blobs: res.Blobs, Layers: res.Layers, Ingests: res.Ingests, Reclaimed: res.Reclaimed})
	return nil
}
