# lib.sh: what the benchmarks share. Sourced with $berth and $work set:
# the daemons' commands, their start and their complete removal.
# shellcheck shell=bash
berthpid= dockerpid=
# shellcheck source=bench/record.sh
. "$(dirname "${BASH_SOURCE[0]}")/record.sh"
B="$berth -H unix://$work/berth.sock"
D="docker -H unix://$work/docker.sock"
P="podman --root $work/podman --runroot $work/podman-run --storage-driver overlay --cgroup-manager=cgroupfs --runtime runc"
# Podman on this kind of host needs limits it can set (see MACHINE-NOTES).
PRUN="--ulimit nofile=20000:20000 --ulimit nproc=4096:4096"

cleanup() {
	set +e
	[[ -n $berthpid ]] && { $B ps -aq | xargs -r $B rm -f >/dev/null; kill "$berthpid"; wait "$berthpid"; } 2>/dev/null
	"$berth" daemon --root "$work/berth" --exec-root "$work/berth-run" --teardown-networks
	[[ -n $dockerpid ]] && { $D ps -aq | xargs -r $D rm -f >/dev/null; kill "$dockerpid"; wait "$dockerpid"; } 2>/dev/null
	[[ -n ${DOCKER_BRIDGE:-} ]] && ip link del "$DOCKER_BRIDGE" 2>/dev/null
	command -v podman >/dev/null && { $P rm -af -t 0 >/dev/null 2>&1; $P system reset -f >/dev/null 2>&1; }
	[[ -d $work/runc ]] && runc --root "$work/runc" list -q 2>/dev/null | xargs -r -n1 runc --root "$work/runc" delete -f
	grep " $work/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
	# berth's parent cgroup, if no other daemon uses it (rmdir refuses a busy one).
	rmdir /sys/fs/cgroup/*/berth /sys/fs/cgroup/berth 2>/dev/null
	rm -rf "$work" 2>/dev/null || { sleep 1; rm -rf "$work"; }
}

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END{if (NR==0) print "n/a"; else print a[int((NR+1)/2)]}'; }

# start_berth starts a berth daemon of its own and imports busybox.tar.
start_berth() {
	"$berth" daemon --root "$work/berth" --exec-root "$work/berth-run" -H "unix://$work/berth.sock" >"$work/berth.log" 2>&1 &
	berthpid=$!
	for _ in $(seq 200); do curl -fsS --unix-socket "$work/berth.sock" http://berth/_ping >/dev/null 2>&1 && break; sleep 0.05; done
	curl -fsS --unix-socket "$work/berth.sock" http://berth/_ping >/dev/null 2>&1 || { echo "bench: the berth daemon did not start:" >&2; cat "$work/berth.log" >&2; exit 1; }
	$B import "$work/busybox.tar" busybox:latest >/dev/null
}

# start_peers starts dockerd and readies podman when installed, each with
# busybox imported, and appends their names to the tools array.
start_peers() {
	if command -v dockerd >/dev/null; then
		mkdir -p "$work/docker" "$work/docker-exec"
		# With DOCKER_BRIDGE set, dockerd's containers get a bridge of the
		# harness's own (removed by cleanup) instead of none; never
		# iptables rules or an ip_forward change, which dockerd leaves
		# behind when it stops.
		local bridge=(--bridge none)
		if [[ -n ${DOCKER_BRIDGE:-} ]]; then
			ip link add "$DOCKER_BRIDGE" type bridge
			ip addr add 172.31.254.1/24 dev "$DOCKER_BRIDGE"
			ip link set "$DOCKER_BRIDGE" up
			bridge=(--bridge "$DOCKER_BRIDGE")
		fi
		dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" -H "unix://$work/docker.sock" \
			--pidfile "$work/docker.pid" "${bridge[@]}" --iptables=false --ip-masq=false --ip-forward=false --storage-driver overlay2 \
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
}

# mem PID...: the average RSS and PSS of the processes, in MB ("n/a n/a"
# for none).
mem() {
	local r=0 p=0 k=0
	for pid in "$@"; do
		read -r rss pss < <(awk '/^Rss:/{r=$2} /^Pss:/{p=$2} END{print r, p}' "/proc/$pid/smaps_rollup")
		r=$((r + rss)); p=$((p + pss)); k=$((k + 1))
	done
	((k > 0)) && awk -v r="$r" -v p="$p" -v k="$k" 'BEGIN{printf "%.1f %.2f\n", r/k/1024, p/k/1024}' || echo "n/a n/a"
}

# supervisors TOOL: the pids of the per-container supervisors of a tool's
# containers (berth's shim, docker's containerd-shim, podman's conmon).
supervisors() {
	case $1 in
	berth) pgrep -f "shim --id .* --state-dir $work/berth-run" ;;
	docker) pgrep -f "containerd-shim.*$work/docker-exec|containerd-shim-runc-v2" ;;
	podman) pgrep -f "conmon .*$work/podman" ;;
	esac
}
