#!/usr/bin/env bash
# build.sh: image build time, berth against Docker's classic builder
# (dockerd from Debian's docker.io, DOCKER_BUILDKIT=0) and podman build,
# in one run, on the fixture projects of test/fixtures/build (busybox
# based; the base image is made offline from busybox-static).
#
#  cold:   every step runs (--no-cache), median of N
#  cached: nothing changed, every step a cache hit, median of N
#
# RUN steps use no network (--network none) in every tool. Every daemon
# gets private directories and sockets under a temporary directory,
# removed at the end with everything mounted in it.
#
# Usage: bench/build.sh [path/to/berth] [runs]
set -euo pipefail
[[ -n ${BENCH_TRACE:-} ]] && set -x
berth=$(realpath "${1:-bin/berth}")
runs=${2:-7}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d /var/tmp/berth-bench-build.XXXXXX)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
trap cleanup EXIT

bash "$here/../scripts/mkbase.sh" "$work/busybox.tar" 2>/dev/null
# The fixtures, with the files the shell app's ADD and .dockerignore need.
cp -r "$here/../test/fixtures/build/shell-app" "$here/../test/fixtures/build/static-site" "$work/"
mkdir -p "$work/payload/payload" && echo "payload" >"$work/payload/payload/message.txt"
tar -C "$work/payload" -czf "$work/shell-app/data.tar.gz" payload
echo ignored >"$work/shell-app/notes.txt"
# Docker 20.10's classic builder has no COPY --chmod (BuildKit only).
sed -i 's/ --chmod=640//' "$work/shell-app/Dockerfile"

start_berth
tools=(berth)
start_peers

build_label() { case $1 in docker) echo "docker (classic builder)" ;; *) echo "$1" ;; esac; }
build_berth() { $B build -q --network none "$@" >/dev/null; }
build_docker() { DOCKER_BUILDKIT=0 $D build -q --network none "$@" >/dev/null 2>&1; }
build_podman() { $P build -q --network none $PRUN "$@" >/dev/null 2>&1; }

for fx in shell-app static-site; do
	declare -A cold=() cached=()
	for tool in "${tools[@]}"; do "build_$tool" -t "bench-$fx" "$work/$fx"; done # warm-up, and the cache
	for i in $(seq "$runs"); do
		for tool in "${tools[@]}"; do
			t0=$(now); "build_$tool" --no-cache "$work/$fx"; t1=$(now)
			cold[$tool]+="$(( (t1 - t0) / 1000 )) "
			t0=$(now); "build_$tool" -t "bench-$fx" "$work/$fx"; t1=$(now)
			cached[$tool]+="$(( (t1 - t0) / 1000 )) "
		done
	done
	echo
	echo "## build $fx (median of $runs, ms)"
	printf '%-10s %10s %10s %14s %14s\n' tool cold cached "cold vs berth" "cached vs berth"
	declare -A mc=() mh=()
	for tool in "${tools[@]}"; do
		mc[$tool]=$(printf '%s\n' ${cold[$tool]} | median)
		mh[$tool]=$(printf '%s\n' ${cached[$tool]} | median)
	done
	for tool in "${tools[@]}"; do
		printf '%-10s %10.1f %10.1f %13.2fx %13.2fx\n' "$tool" "$(awk -v x="${mc[$tool]}" 'BEGIN{print x/1000}')" \
			"$(awk -v x="${mh[$tool]}" 'BEGIN{print x/1000}')" \
			"$(awk -v b="${mc[berth]}" -v x="${mc[$tool]}" 'BEGIN{print x/b}')" \
			"$(awk -v b="${mh[berth]}" -v x="${mh[$tool]}" 'BEGIN{print x/b}')"
	done
	for tool in "${tools[@]}"; do
		# shellcheck disable=SC2046
		record "build $fx, cold (--no-cache)" "$(build_label "$tool")" ms lower $(printf '%s\n' ${cold[$tool]} | awk '{printf "%.2f ", $1/1000}')
		# shellcheck disable=SC2046
		record "build $fx, fully cached" "$(build_label "$tool")" ms lower $(printf '%s\n' ${cached[$tool]} | awk '{printf "%.2f ", $1/1000}')
	done
	unset cold cached mc mh
done
