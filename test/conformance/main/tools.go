//go:build tools

// Package main pins the OCI distribution-spec conformance suite (the
// redesigned one of the main branch) so that scripts/conformance.sh can
// build it from the Go module proxy.
package main

import _ "github.com/opencontainers/distribution-spec/conformance"
