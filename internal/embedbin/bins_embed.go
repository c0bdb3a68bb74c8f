//go:build embedbin

package embedbin

import _ "embed"

// Shim is cmd/berth-shim and Runtime is cmd/berth-runtime, built by `make
// build` into this directory before berth itself.
var (
	//go:embed berth-shim
	Shim []byte
	//go:embed berth-runtime
	Runtime []byte
)
