package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/internal/atomicfile"
)

// On-disk layout under Config.Root; every file is written atomically:
//
//	networks/<networkID>.json              Network
//	endpoints/<containerID>/<networkID>.json Endpoint: the lease of its IP
//	ports/<containerID>.json               portRecord: published ports
//
// An address is leased iff an endpoint file holds it. Files are written
// before the kernel is touched and removed after it is cleaned, so a crash
// leaves at worst a record without kernel state, which the next start
// (New) or Reconcile completes or removes, never kernel state without a
// record.

// portRecord is what Publish persisted for a container.
type portRecord struct {
	NetworkID string        `json:"networkID"`
	Bridge    string        `json:"bridge"`
	IP        netip.Addr    `json:"ip"`
	Ports     []PortMapping `json:"ports"`
}

func (m *Manager) networkFile(id string) string {
	return filepath.Join(m.cfg.Root, "networks", id+".json")
}

func (m *Manager) endpointDir(containerID string) string {
	return filepath.Join(m.cfg.Root, "endpoints", containerID)
}

func (m *Manager) endpointFile(containerID, networkID string) string {
	return filepath.Join(m.endpointDir(containerID), networkID+".json")
}

func (m *Manager) portsFile(containerID string) string {
	return filepath.Join(m.cfg.Root, "ports", containerID+".json")
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// removeFile deletes path durably; a missing file is not an error.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("removing %s: %w", path, err)
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// jsonFiles lists the record files of dir by their stem, skipping the
// temporary files an interrupted atomic write leaves.
func jsonFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		out = append(out, strings.TrimSuffix(name, ".json"))
	}
	return out, nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("network state file %s is corrupt: %w", path, err)
	}
	return nil
}

// load reads every record under Root into m's maps.
func (m *Manager) load() error {
	ids, err := jsonFiles(filepath.Join(m.cfg.Root, "networks"))
	if err != nil {
		return fmt.Errorf("reading networks: %w", err)
	}
	for _, id := range ids {
		path := m.networkFile(id)
		n := &Network{}
		if err := readJSON(path, n); err != nil {
			return err
		}
		if n.ID != id || !n.Subnet.IsValid() || !n.Gateway.IsValid() || n.Bridge == "" {
			return fmt.Errorf("network state file %s is corrupt: missing or mismatched id, subnet, gateway or bridge", path)
		}
		m.networks[id] = n
	}

	ents, err := os.ReadDir(filepath.Join(m.cfg.Root, "endpoints"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading endpoints: %w", err)
	}
	for _, e := range ents {
		cid := e.Name()
		if !e.IsDir() || checkContainerID(cid) != nil {
			continue
		}
		nids, err := jsonFiles(m.endpointDir(cid))
		if err != nil {
			return fmt.Errorf("reading endpoints of container %s: %w", cid, err)
		}
		for _, nid := range nids {
			path := m.endpointFile(cid, nid)
			ep := &Endpoint{}
			if err := readJSON(path, ep); err != nil {
				return err
			}
			if ep.ContainerID != cid || ep.NetworkID != nid || !ep.IP.IsValid() {
				return fmt.Errorf("network state file %s is corrupt: mismatched container, network or address", path)
			}
			m.putEndpoint(ep)
		}
	}

	cids, err := jsonFiles(filepath.Join(m.cfg.Root, "ports"))
	if err != nil {
		return fmt.Errorf("reading published ports: %w", err)
	}
	for _, cid := range cids {
		if checkContainerID(cid) != nil {
			continue
		}
		rec := &portRecord{}
		if err := readJSON(m.portsFile(cid), rec); err != nil {
			return err
		}
		m.ports[cid] = rec
	}
	return nil
}
