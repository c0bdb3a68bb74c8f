// Command berth-runtime is berth's embedded OCI runtime on its own: the
// code of `berth runtime` (runc's command line over libcontainer) linked
// without the rest of berth. It runs three times on the path of every
// container start (create, the container init it re-executes, delete),
// and a program this size starts in a third of the time berth does. `make
// build` compiles it first and embeds it in berth, which installs it under
// its exec root; a berth built without it re-executes itself instead.
package main

import (
	"os"

	"github.com/berth-dev/berth/internal/runtime/libct"
)

// init runs the container init that libcontainer re-executes as
// `berth-runtime init`, before main (as runc does).
func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libct.Init() // never returns
	}
}

func main() {
	args := os.Args[1:]
	// Called as `berth-runtime runtime ...`, the way `berth runtime ...` is.
	if len(args) > 0 && args[0] == "runtime" {
		args = args[1:]
	}
	os.Exit(libct.Main(args))
}
