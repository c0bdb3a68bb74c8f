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
berthpid= dockerpid=
B="$berth -H unix://$work/berth.sock"
D="docker -H unix://$work/docker.sock"
P="podman --root $work/podman --runroot $work/podman-run --storage-driver overlay --cgroup-manager=cgroupfs --runtime runc"

cleanup() {
	set +e
	[[ -n $berthpid ]] && { $B ps -aq | xargs -r $B rm -f >/dev/null; kill "$berthpid"; wait "$berthpid"; } 2>/dev/null
	"$berth" daemon --root "$work/berth" --exec-root "$work/berth-run" --teardown-networks
	[[ -n $dockerpid ]] && { $D ps -aq | xargs -r $D rm -f >/dev/null; kill "$dockerpid"; wait "$dockerpid"; } 2>/dev/null
	command -v podman >/dev/null && { $P rm -af -t 0 >/dev/null 2>&1; $P system reset -f >/dev/null 2>&1; }
	grep " $work/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
	rmdir /sys/fs/cgroup/*/berth /sys/fs/cgroup/berth 2>/dev/null
	rm -rf "$work" 2>/dev/null || { sleep 1; rm -rf "$work"; }
}
trap cleanup EXIT

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END{if (NR==0) print "n/a"; else print a[int((NR+1)/2)]}'; }

bash "$here/../scripts/mkbase.sh" "$work/busybox.tar" 2>/dev/null
# The fixtures, with the files the shell app's ADD and .dockerignore need.
cp -r "$here/../test/fixtures/build/shell-app" "$here/../test/fixtures/build/static-site" "$work/"
mkdir -p "$work/payload/payload" && echo "payload" >"$work/payload/payload/message.txt"
tar -C "$work/payload" -czf "$work/shell-app/data.tar.gz" payload
echo ignored >"$work/shell-app/notes.txt"
# Docker 20.10's classic builder has no COPY --chmod (BuildKit only).
sed -i 's/ --chmod=640//' "$work/shell-app/Dockerfile"

"$berth" daemon --root "$work/berth" --exec-root "$work/berth-run" -H "unix://$work/berth.sock" >"$work/berth.log" 2>&1 &
berthpid=$!
for _ in $(seq 200); do curl -fsS --unix-socket "$work/berth.sock" http://berth/_ping >/dev/null 2>&1 && break; sleep 0.05; done
$B import "$work/busybox.tar" busybox:latest >/dev/null
tools=(berth)
if command -v dockerd >/dev/null; then
	mkdir -p "$work/docker" "$work/docker-exec"
	dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" -H "unix://$work/docker.sock" \
		--pidfile "$work/docker.pid" --bridge none --iptables=false --ip-masq=false --storage-driver overlay2 \
		>"$work/dockerd.log" 2>&1 &
	dockerpid=$!
	for _ in $(seq 300); do $D version >/dev/null 2>&1 && break; sleep 0.1; done
	$D import "$work/busybox.tar" busybox:latest >/dev/null
	tools+=(docker)
else
	echo "bench: dockerd not installed (apt-get install docker.io); skipped" >&2
fi
if command -v podman >/dev/null; then
	$P import "$work/busybox.tar" busybox:latest >/dev/null 2>&1
	tools+=(podman)
else
	echo "bench: podman not installed (scripts/deps.sh --bench); skipped" >&2
fi

build_berth() { $B build -q --network none "$@" >/dev/null; }
build_docker() { DOCKER_BUILDKIT=0 $D build -q --network none "$@" >/dev/null 2>&1; }
build_podman() { $P build -q --network none --ulimit nofile=20000:20000 "$@" >/dev/null 2>&1; }

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
	unset cold cached mc mh
done
