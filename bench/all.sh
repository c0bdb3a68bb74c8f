#!/usr/bin/env bash
# all.sh: every benchmark in one run (`make bench`), then the published
# page: docs/benchmarks.md (a table per workload: medians, spreads,
# ratios), docs/benchmarks.png (the ratios) and the headline lines of the
# README, all written by bench/report from the result lines each script
# records. The rivals are Debian's packages, installed by
# `scripts/deps.sh --bench`: docker.io (dockerd, containerd, runc), podman,
# runc, docker-registry (CNCF Distribution) and skopeo.
#
# Usage: bench/all.sh [path/to/berth]
# RUNS_RUN, ROUNDS_DENSITY, RUNS_PULL, RUNS_BUILD and RUNS (registry) set
# the sample counts; OUT (default: the repository) where the page goes.
set -euo pipefail
berth=$(realpath "${1:-bin/berth}")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
out=${OUT:-$root}
results=$(mktemp /var/tmp/berth-bench-results.XXXXXX)
export BENCH_RESULTS=$results

version() { "$@" 2>/dev/null | head -1 || echo "not installed"; }
python3 - "$results" <<PY
import json, os, platform, sys, time
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
meta = {
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "machine": f"{cpu}, {os.cpu_count()} CPUs, {mem / 1048576:.0f} GiB",
    "kernel": platform.release(),
    "versions": "; ".join([
        "$(version "$berth" --version)",
        "$(version dockerd --version)",
        "$(version podman --version)",
        "$(version runc --version)",
        "docker-registry $(version docker-registry --version)",
        "$(version skopeo --version)",
    ]),
}
open(sys.argv[1], "a").write(json.dumps({"meta": meta}) + "\n")
PY

bash "$here/run.sh" "$berth" "${RUNS_RUN:-50}"
bash "$here/density.sh" "$berth" "${ROUNDS_DENSITY:-3}" 50
bash "$here/pull.sh" "$berth" "${RUNS_PULL:-3}"
bash "$here/build.sh" "$berth" "${RUNS_BUILD:-5}"
bash "$here/registry.sh" "$berth"

# The raw samples are published beside the page.
install -m 0644 "$results" "$out/docs/benchmarks.jsonl"
(cd "$root" && go run ./bench/report -in "$results" -md "$out/docs/benchmarks.md" -png "$out/docs/benchmarks.png" -readme "$out/README.md")
rm -f "$results"
echo "bench: wrote docs/benchmarks.md, docs/benchmarks.png, docs/benchmarks.jsonl and the README's headline" >&2
