#!/usr/bin/env bash
# run.sh: container start-up latency and per-container memory, berth
# against bare runc and (when installed) docker and podman, in one run.
#
#  1. `run --rm --network none busybox true`, end to end from the CLI:
#     berth (embedded runtime), berth --runtime runc, docker (dockerd from
#     Debian's docker.io), podman, and bare `runc run` of a prepared bundle
#     (the floor: no engine at all), and bare runc on the spec berth
#     generates for the same container (Docker's defaults, seccomp
#     included: what the spec itself costs). Runs alternate tool by tool (A B C A B
#     C ...) after a warm-up; the median of N and the ratio to berth are
#     printed.
#  2. Memory of the engine per idle container: the RSS and PSS of each
#     container's supervisor (berth's shim, docker's containerd-shim,
#     podman's conmon) with 10 idle containers, and each daemon's idle RSS.
#
# Every daemon gets private directories and sockets under a temporary
# directory, which is removed at the end with everything mounted in it.
# The base image is made offline from busybox-static (scripts/mkbase.sh).
#
# Usage: bench/run.sh [path/to/berth] [runs]
set -euo pipefail
[[ -n ${BENCH_TRACE:-} ]] && set -x
berth=$(realpath "${1:-bin/berth}")
runs=${2:-50}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d /var/tmp/berth-bench-run.XXXXXX)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
trap cleanup EXIT

bash "$here/../scripts/mkbase.sh" "$work/busybox.tar" 2>/dev/null

# berth: a daemon of its own.
start_berth

# bare runc: the same rootfs as a bundle.
mkdir -p "$work/bundle/rootfs"
tar -C "$work/bundle/rootfs" -xf "$work/busybox.tar"
(cd "$work/bundle" && runc spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"true"/' config.json)

# bare runc on berth's own spec for busybox (Docker's defaults: seccomp
# profile, capabilities, masked paths, /dev, cgroup): what an engine adds
# to the same container, measured apart from what the spec costs.
$B run --name specsrc --network none busybox true
short=$($B inspect -f '{{.Id}}' specsrc | cut -c1-12)
mkdir -p "$work/bundle-berth"
ln -s "$work/bundle/rootfs" "$work/bundle-berth/rootfs"
sed -e "s#\"path\": \"[^\"]*/rootfs\"#\"path\": \"$work/bundle/rootfs\"#" \
	"$work/berth-run/c/$short/config.json" >"$work/bundle-berth/config.json"

tools=(berth berth-bridge berth-runc runc runc-berth-spec)
# docker also runs on a bridge (one of the harness's, see lib.sh); podman
# only with none: its bridge (CNI or netavark) installs firewall rules
# that outlive it, which this harness must not leave on the machine.
DOCKER_BRIDGE=bbench$((RANDOM % 100000))
start_peers
[[ " ${tools[*]} " == *" docker "* ]] && tools+=(docker-bridge)

n=0
run_berth() { $B run --rm --network none busybox true; }
run_berth-bridge() { $B run --rm busybox true; }
run_berth-runc() { $B run --rm --runtime runc --network none busybox true; }
run_docker() { $D run --rm --network none busybox true; }
run_docker-bridge() { $D run --rm busybox true; }
run_podman() { $P run --rm --network none $PRUN busybox true >/dev/null; }
run_runc() { n=$((n + 1)); runc --root "$work/runc" run -b "$work/bundle" "bench-$n"; }
run_runc-berth-spec() { n=$((n + 1)); runc --root "$work/runc" run -b "$work/bundle-berth" "bench-$n" </dev/null; }

echo "warm-up..." >&2
for tool in "${tools[@]}"; do for _ in 1 2 3; do "run_$tool"; done; done
declare -A times
for i in $(seq "$runs"); do
	for tool in "${tools[@]}"; do
		t0=$(now)
		"run_$tool"
		t1=$(now)
		times[$tool]+="$(( (t1 - t0) / 1000 )) "
	done
	(( i % 10 == 0 )) && echo "  $i/$runs" >&2
done

echo
echo "## run --rm --network none busybox true (median of $runs, ms)"
printf '%-16s %10s %10s %12s\n' tool median p90 "vs berth"
declare -A med
for tool in "${tools[@]}"; do
	med[$tool]=$(printf '%s\n' ${times[$tool]} | median)
done
declare -A label=([berth]=berth [berth-runc]="berth --runtime runc" [runc]="bare runc (runc spec)"
	[runc-berth-spec]="bare runc (berth's spec)" [docker]=docker [podman]=podman)
for tool in "${tools[@]}"; do
	ms=$(printf '%s\n' ${times[$tool]} | awk '{printf "%.2f ", $1/1000}')
	if [[ $tool == berth-bridge || $tool == docker-bridge ]]; then
		# shellcheck disable=SC2086
		record "run --rm busybox true, default bridge" "${tool%-bridge}" ms lower $ms
	else
		# shellcheck disable=SC2086
		record "run --rm --network none busybox true" "${label[$tool]}" ms lower $ms
	fi
done
for tool in "${tools[@]}"; do
	p90=$(printf '%s\n' ${times[$tool]} | sort -n | awk '{a[NR]=$1} END{print a[int(NR*0.9+0.5)]}')
	printf '%-16s %10.1f %10.1f %11.2fx\n' "$tool" "$(awk -v x="${med[$tool]}" 'BEGIN{print x/1000}')" \
		"$(awk -v x="$p90" 'BEGIN{print x/1000}')" "$(awk -v b="${med[berth]}" -v x="${med[$tool]}" 'BEGIN{print x/b}')"
done

echo
printf 'bridge networking adds %.1f ms to berth run --rm (median, berth-bridge - berth)\n' \
	"$(awk -v a="${med[berth-bridge]}" -v b="${med[berth]}" 'BEGIN{print (a-b)/1000}')"

echo
echo "## memory per idle container (10 containers; MB)"
printf '%-10s %-16s %8s %8s %12s\n' engine supervisor RSS PSS "daemon RSS"
for i in $(seq 10); do $B run -d --network none busybox sleep 600 >/dev/null; done
sleep 1
read -r r p < <(mem $(supervisors berth))
printf '%-10s %-16s %8s %8s %12s\n' berth "berth shim" "$r" "$p" "$(awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$berthpid/status)"
record "supervisor memory per idle container, RSS" berth MB lower "$r"
record "supervisor memory per idle container, PSS" berth MB lower "$p"
if [[ -n $dockerpid ]]; then
	for i in $(seq 10); do $D run -d --network none busybox sleep 600 >/dev/null; done
	sleep 1
	read -r r p < <(mem $(supervisors docker | head -10))
	cpid=$(pgrep -f "containerd --config $work/docker-exec" | head -1 || true)
	printf '%-10s %-16s %8s %8s %12s\n' docker containerd-shim "$r" "$p" "$(awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$dockerpid/status)"
	record "supervisor memory per idle container, RSS" "docker (containerd-shim)" MB lower "$r"
	record "supervisor memory per idle container, PSS" "docker (containerd-shim)" MB lower "$p"
fi
if command -v podman >/dev/null; then
	for i in $(seq 10); do $P run -d --network none $PRUN busybox sleep 600 >/dev/null 2>&1; done
	sleep 1
	read -r r p < <(mem $(supervisors podman | head -10))
	printf '%-10s %-16s %8s %8s %12s\n' podman conmon "$r" "$p" "(no daemon)"
	record "supervisor memory per idle container, RSS" "podman (conmon)" MB lower "$r"
	record "supervisor memory per idle container, PSS" "podman (conmon)" MB lower "$p"
fi

# TCP throughput from the host into a container: through a published port
# on 127.0.0.1 (DNAT in the kernel, no userland proxy) and straight to the
# container's address on the bridge, 1 GiB each, median of 3.
echo
echo "## TCP throughput host -> container (1 GiB, median of 3)"
$B run -d --name sink -p 127.0.0.1::5001 busybox sh -c 'while true; do nc -l -p 5001 >/dev/null; done' >/dev/null
hp=$($B port sink 5001 | head -1 | sed 's/.*://')
cip=$($B inspect -f '{{.NetworkSettings.Networks.bridge.IPAddress}}' sink)
sleep 0.5
send() { # host port -> MB/s
	local t0 t1
	t0=$(now)
	head -c 1073741824 /dev/zero >"/dev/tcp/$1/$2"
	t1=$(now)
	awk -v ns="$((t1 - t0))" 'BEGIN{printf "%.0f\n", 1024/(ns/1e9)}'
	sleep 0.3 # the listener restarts
}
declare -A tput
for path in published direct; do
	vals=()
	for _ in 1 2 3; do
		if [[ $path == published ]]; then vals+=("$(send 127.0.0.1 "$hp")"); else vals+=("$(send "$cip" 5001)"); fi
	done
	tput[$path]=$(printf '%s\n' "${vals[@]}" | median)
done
printf '%-34s %8s MB/s\n' "published port (127.0.0.1:$hp)" "${tput[published]}" "container address ($cip:5001)" "${tput[direct]}"
printf 'published / direct: %.0f%%\n' "$(awk -v a="${tput[published]}" -v b="${tput[direct]}" 'BEGIN{print 100*a/b}')"
