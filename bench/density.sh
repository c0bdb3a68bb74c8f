#!/usr/bin/env bash
# density.sh: 50 idle containers at once. For berth, docker and podman in
# turn (A B C A B C ...), start 50 detached `busybox sleep` containers
# (--network none) one after another, as a user's script would, and time
# the lot; then measure the memory each container costs its engine: the
# average RSS and PSS of the per-container supervisors (berth's shim,
# docker's containerd-shim, podman's conmon) and the growth of the daemon
# (dockerd and containerd for docker) divided by 50; then remove them all.
#
# Usage: bench/density.sh [path/to/berth] [rounds] [containers]
set -euo pipefail
[[ -n ${BENCH_TRACE:-} ]] && set -x
berth=$(realpath "${1:-bin/berth}")
rounds=${2:-3}
count=${3:-50}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d /var/tmp/berth-bench-density.XXXXXX)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
trap cleanup EXIT

bash "$here/../scripts/mkbase.sh" "$work/busybox.tar" 2>/dev/null
start_berth
tools=(berth)
start_peers

cli() { case $1 in berth) echo "$B" ;; docker) echo "$D" ;; podman) echo "$P" ;; esac; }
start_one() { # tool
	case $1 in
	podman) $P run -d --network none $PRUN busybox sleep 3600 >/dev/null 2>&1 ;;
	*) $(cli "$1") run -d --network none busybox sleep 3600 >/dev/null ;;
	esac
}
remove_all() { # tool
	local c; c=$(cli "$1")
	$c ps -aq | xargs -r $c rm -f >/dev/null 2>&1 || true
}
# daemon_kb TOOL: the resident memory of the tool's daemons, in kB.
daemon_kb() {
	local pids=()
	case $1 in
	berth) pids=("$berthpid") ;;
	docker) pids=("$dockerpid"); mapfile -t -O 1 pids < <(pgrep -f "containerd --config $work/docker-exec" || true) ;;
	podman) return 0 ;; # no daemon
	esac
	local kb=0
	for p in "${pids[@]}"; do
		[[ -n $p ]] && kb=$((kb + $(awk '/VmRSS/{print $2}' "/proc/$p/status")))
	done
	echo "$kb"
}

declare -A wall rss pss dmn
for tool in "${tools[@]}"; do start_one "$tool"; remove_all "$tool"; done # warm-up
for i in $(seq "$rounds"); do
	for tool in "${tools[@]}"; do
		before=$(daemon_kb "$tool")
		t0=$(now)
		for _ in $(seq "$count"); do start_one "$tool"; done
		t1=$(now)
		sleep 1
		read -r r p < <(mem $(supervisors "$tool"))
		after=$(daemon_kb "$tool")
		secs=$(awk -v ns="$((t1 - t0))" 'BEGIN{printf "%.3f", ns/1e9}')
		wall[$tool]+="$secs "
		rss[$tool]+="$r " pss[$tool]+="$p "
		[[ -n $before ]] && dmn[$tool]+="$(awk -v a="$after" -v b="$before" -v n="$count" 'BEGIN{printf "%.3f", (a-b)/1024/n}') "
		echo "  $tool round $i: $count containers in $secs s" >&2
		remove_all "$tool"
	done
done

echo
echo "## $count idle containers (medians of $rounds rounds)"
printf '%-8s %12s %16s %16s %18s\n' tool "start all (s)" "supervisor RSS" "supervisor PSS" "daemon growth/ctr"
label() { case $1 in docker) echo "docker (containerd-shim)" ;; podman) echo "podman (conmon)" ;; *) echo "$1" ;; esac; }
for tool in "${tools[@]}"; do
	med() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END{if (NR==0) print "n/a"; else print a[int((NR+1)/2)]}'; }
	printf '%-8s %12s %13s MB %13s MB %15s MB\n' "$tool" "$(med "${wall[$tool]}")" "$(med "${rss[$tool]}")" "$(med "${pss[$tool]}")" "$(med "${dmn[$tool]:-}")"
	# shellcheck disable=SC2086
	record "start $count idle containers, one after another" "$tool" s lower ${wall[$tool]}
	# shellcheck disable=SC2086
	record "memory per container with $count running: supervisor RSS" "$(label "$tool")" MB lower ${rss[$tool]}
	# shellcheck disable=SC2086
	record "memory per container with $count running: supervisor PSS" "$(label "$tool")" MB lower ${pss[$tool]}
	if [[ -n ${dmn[$tool]:-} ]]; then
		# shellcheck disable=SC2086
		record "memory per container with $count running: daemon growth" "$tool" MB lower ${dmn[$tool]}
	fi
done
