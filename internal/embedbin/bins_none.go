//go:build !embedbin

package embedbin

// Shim and Runtime are empty in a berth built without the embedbin tag:
// berth then re-executes itself as the shim and as the runtime.
var Shim, Runtime []byte
