// Package embedbin holds the small helper programs berth carries inside
// its one binary, and installs them where they run from.
//
// Two processes run per container for as long as it lives or on the path
// of every start: the shim, which holds the container's stdio, and the
// runtime with the container init it re-executes. Run as berth itself,
// each would map a 36 MB program and run the package initialisers of
// everything berth links (the registry, the builder, Prometheus, the
// Docker API): measured here, 12 ms per start of `berth runtime` against
// 4.5 ms for the runtime alone, three times on the path of every `run`.
// So `make build` builds them first (cmd/berth-shim, cmd/berth-runtime)
// and embeds them; a berth built without the embedbin tag (a plain
// `go build`) has none and re-executes itself instead.
package embedbin

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/internal/atomicfile"
)

// Install writes program b into dir under name and a prefix of its hash
// (so the shims of an older berth, still running, keep their own file),
// and returns its path; "" when b is empty, meaning berth runs itself
// instead. A file already there is reused only if its content is right.
func Install(dir, name string, b []byte) (string, error) {
	if len(b) == 0 {
		return "", nil
	}
	sum := sha256.Sum256(b)
	path := filepath.Join(dir, name+"-"+hex.EncodeToString(sum[:])[:16])
	if cur, err := os.ReadFile(path); err == nil && sha256.Sum256(cur) == sum {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", fmt.Errorf("installing %s: %w", name, err)
	}
	if err := atomicfile.WriteFile(path, b, 0o755); err != nil {
		return "", fmt.Errorf("installing %s: %w", name, err)
	}
	return path, nil
}
