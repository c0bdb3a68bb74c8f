#!/usr/bin/env bash
# registry.sh: berth's registry against CNCF Distribution (Debian's
# docker-registry 2.8) in the same run, on 127.0.0.1, with bench/regload as
# the client: blob upload and download throughput with 1 and 32 clients
# (1 MiB and 100 MiB blobs) and manifest GET latency under 64 clients.
# Each workload runs against the two registries alternately, RUNS times
# (default 3), after a warm-up; the table shows medians and ratios.
# Usage: bench/registry.sh BERTH_BINARY
set -euo pipefail
berth=$(realpath "${1:-bin/berth}")
runs=${RUNS:-3}
work=$(mktemp -d /var/tmp/berth-bench-registry.XXXXXX)
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/record.sh
. "$here/record.sh"
pids=()
cleanup() {
	set +e
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT

command -v docker-registry >/dev/null || { echo "bench: docker-registry not installed (apt-get install docker-registry)" >&2; exit 1; }
go build -o "$work/regload" "$here/regload"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

bport=$(free_port)
"$berth" registry serve --root "$work/berth" --addr "127.0.0.1:$bport" --config <(printf 'access_log: false\n') >"$work/berth.log" 2>&1 &
pids+=($!)
dport=$(free_port)
cat >"$work/distribution.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/distribution}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$dport}
YML
docker-registry serve "$work/distribution.yml" >"$work/distribution.log" 2>&1 &
pids+=($!)
for p in $bport $dport; do
	for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$p/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
done

# run URL ARGS...: one regload run, printing its JSON. Each starts with no
# dirty pages: berth fsyncs every blob before it is visible and
# Distribution never does, so without the sync one tool's fsync would pay
# for the other's writeback.
run() { local url=$1; shift; sync; "$work/regload" -url "$url" "$@"; }
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }
median() { sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

printf '| workload | berth | distribution 2.8 | ratio |\n|---|---|---|---|\n'
bench() { # name field better(higher|lower) regload-args...
	local name=$1 f=$2 better=$3; shift 3
	run "http://127.0.0.1:$bport" "$@" >/dev/null; run "http://127.0.0.1:$dport" "$@" >/dev/null # warm-up
	local b=() d=()
	for _ in $(seq "$runs"); do
		b+=("$(run "http://127.0.0.1:$bport" "$@" | field "$f")")
		d+=("$(run "http://127.0.0.1:$dport" "$@" | field "$f")")
	done
	local unit=${name##*(}
	unit=${unit%)}
	record "registry: ${name% (*}" berth "$unit" "$better" "${b[@]}"
	record "registry: ${name% (*}" "distribution 2.8" "$unit" "$better" "${d[@]}"
	local bm dm
	bm=$(printf '%s\n' "${b[@]}" | median | xargs printf '%.1f')
	dm=$(printf '%s\n' "${d[@]}" | median | xargs printf '%.1f')
	local ratio
	if [[ $better == higher ]]; then ratio=$(python3 -c "print(f'{$bm/$dm:.2f}x')"); else ratio=$(python3 -c "print(f'{$dm/$bm:.2f}x' if $bm else 'n/a')"); fi
	printf '| %s | %s | %s | %s |\n' "$name" "$bm" "$dm" "$ratio"
}
MiB=1048576
bench "upload 1 MiB, 1 client (MB/s)" mb_per_s higher -mode upload -clients 1 -size $MiB -n 32
bench "upload 1 MiB, 32 clients (MB/s)" mb_per_s higher -mode upload -clients 32 -size $MiB -n 8
bench "upload 100 MiB, 1 client (MB/s)" mb_per_s higher -mode upload -clients 1 -size $((100 * MiB)) -n 2
bench "upload 100 MiB, 32 clients (MB/s)" mb_per_s higher -mode upload -clients 32 -size $((100 * MiB)) -n 1
bench "download 1 MiB, 1 client (MB/s)" mb_per_s higher -mode download -clients 1 -size $MiB -n 64
bench "download 1 MiB, 32 clients (MB/s)" mb_per_s higher -mode download -clients 32 -size $MiB -n 16
bench "download 100 MiB, 1 client (MB/s)" mb_per_s higher -mode download -clients 1 -size $((100 * MiB)) -n 4
bench "download 100 MiB, 32 clients (MB/s)" mb_per_s higher -mode download -clients 32 -size $((100 * MiB)) -n 2
bench "manifest GET p50, 64 clients (ms)" p50_ms lower -mode manifest -clients 64 -n 200
bench "manifest GET p99, 64 clients (ms)" p99_ms lower -mode manifest -clients 64 -n 200
echo
echo "ratio: how many times better berth is (throughput: berth/distribution; latency: distribution/berth); medians of $runs alternating runs"
