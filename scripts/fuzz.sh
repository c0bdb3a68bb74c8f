#!/usr/bin/env bash
# fuzz runs every fuzz target briefly. Budgets are execution counts, not
# durations: with a -fuzztime duration, Go 1.26's coordinator can report a
# spurious "context deadline exceeded" when the deadline races a busy worker
# (golang/go#75804, fixed in Go 1.27). A count has no deadline to race.
# FUZZSCALE multiplies every count (e.g. FUZZSCALE=10 for a longer run).
set -euo pipefail
GO=${GO:-go}
scale=${FUZZSCALE:-1}

# package target executions (each about 5-10 s on a 2-core machine)
targets=(
	"./internal/reference FuzzParse 200000"
	"./internal/images FuzzDecodeManifest 40000"
	"./internal/images FuzzLoad 4000"
	"./internal/archive FuzzApply 10000"
	"./internal/archive FuzzDecompressGzip 40000"
	"./internal/logs FuzzRead 20000"
	"./internal/dockerapi FuzzRequest 20000"
	"./internal/dns FuzzServeMsg 20000"
	"./internal/network FuzzNetworkInput 20000"
	"./internal/events FuzzOpen 5000"
	"./internal/probe FuzzParse 100000"
	"./internal/build FuzzDockerfile 20000"
	"./internal/build FuzzDockerignore 5000"
	"./internal/registry FuzzParseRoute 100000"
	"./internal/registry/storage FuzzParseManifest 40000"
	"./internal/registry/auth FuzzParseScope 50000"
)

for t in "${targets[@]}"; do
	read -r pkg name count <<<"$t"
	n=$((count * scale))
	echo "fuzz $name in $pkg: ${n} executions"
	"$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "${n}x" -fuzzminimizetime 20x "$pkg"
done
