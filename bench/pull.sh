#!/usr/bin/env bash
# pull.sh: cold pull of a ~195 MB, 6-layer gzip image from a local CNCF
# Distribution registry, into an empty store, unpacking included, by berth,
# docker (dockerd from Debian's docker.io), podman, and `skopeo copy ... oci:`
# (download and write blobs only: the ceiling). Every run gets a new, empty
# directory for its store, and nothing is deleted until all runs are done:
# ext4 makes inode allocation slow for minutes after many files are deleted,
# which would tax whichever tool runs after a clean-up. (A fresh loop-mounted
# file system per run avoids that too, but doubles every write through the
# loop device and measures the loop driver more than the tools.) Prints the
# median MB/s of compressed bytes per tool and the ratios to berth.
#
# Usage: bench/pull.sh [path/to/berth] [runs]
set -euo pipefail
berth=$(realpath "${1:-bin/berth}")
runs=${2:-3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
regpid= dockerpid= berthpid= mnt= n=0
cleanup() {
	set +e
	[[ -n $berthpid ]] && kill "$berthpid" 2>/dev/null && wait "$berthpid" 2>/dev/null
	[[ -n $dockerpid ]] && kill "$dockerpid" 2>/dev/null && wait "$dockerpid" 2>/dev/null
	[[ -n $regpid ]] && kill "$regpid" 2>/dev/null && wait "$regpid" 2>/dev/null
	# Anything a peer left mounted under the work directory goes first.
	grep " $work/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
	rm -rf "$work"
}
trap cleanup EXIT

# The image: one layer per host directory, made offline.
dirs=(/usr/local/go/src /usr/local/go/pkg /usr/lib/gcc /usr/libexec /usr/share/locale /usr/lib/python3)
for d in "${dirs[@]}"; do [[ -d $d ]] || { echo "bench: $d missing; edit dirs in $0" >&2; exit 1; }; done
bytes=$(cd "$here/.." && go run ./bench/mkimage -o "$work/layout" -tag bench "${dirs[@]}" 2>/dev/null)
mb=$(awk -v b="$bytes" 'BEGIN{printf "%.1f", b/1e6}')

port=
for _ in $(seq 50); do
	p=$((20000 + RANDOM % 20000))
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
# Pulls need no bridge network: keep the host untouched.
echo '{"bridge": "none"}' >"$work/berth-config.json"
cat >"$work/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
regpid=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.05; done
ref=127.0.0.1:$port/bench/img:1
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:bench" "docker://$ref"
echo "image: $ref, $mb MB compressed in ${#dirs[@]} layers; $runs cold runs per tool" >&2

# fresh points $mnt at a new empty directory and flushes dirty data, so
# no run pays for the previous one's writeback.
fresh() {
	n=$((n + 1))
	mnt=$work/run-$n
	mkdir -p "$mnt"
	sync
}

now() { date +%s.%N; }
declare -A results

# berth's CLI is a client of its daemon: each run starts a daemon on the
# run's empty directory and its own socket (as the docker runs start a
# dockerd), times the pull only, then stops the daemon.
run_berth() {
	fresh
	local sock=$mnt/b.sock
	"$berth" daemon --root "$mnt/berth" --exec-root "$mnt/run" -H "unix://$sock" --config "$work/berth-config.json" \
		>"$work/berthd.log" 2>&1 &
	berthpid=$!
	for _ in $(seq 200); do
		curl -fsS --unix-socket "$sock" http://berth/_ping >/dev/null 2>&1 && break
		kill -0 "$berthpid" 2>/dev/null || { echo "bench: the berth daemon exited:" >&2; cat "$work/berthd.log" >&2; exit 1; }
		sleep 0.05
	done
	local t0 t1; t0=$(now)
	"$berth" -H "unix://$sock" pull -q "$ref" >/dev/null
	t1=$(now); echo "$t0 $t1"
	kill "$berthpid"; wait "$berthpid" 2>/dev/null || true; berthpid=
}
run_skopeo() {
	fresh
	local t0 t1; t0=$(now)
	skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$mnt/oci:bench"
	t1=$(now); echo "$t0 $t1"
}
run_podman() {
	fresh
	local t0 t1; t0=$(now)
	podman --root "$mnt/podman" --runroot "$mnt/podman-run" --storage-driver overlay --cgroup-manager=cgroupfs \
		pull -q --tls-verify=false "$ref" >/dev/null
	t1=$(now); echo "$t0 $t1"
}
run_docker() {
	fresh
	mkdir -p "$mnt/docker" "$mnt/docker-exec"
	dockerd --data-root "$mnt/docker" --exec-root "$mnt/docker-exec" -H "unix://$mnt/docker.sock" \
		--pidfile "$mnt/docker.pid" --bridge none --iptables=false --ip-masq=false --storage-driver overlay2 \
		>"$work/dockerd.log" 2>&1 &
	dockerpid=$!
	for _ in $(seq 200); do docker -H "unix://$mnt/docker.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
	local t0 t1; t0=$(now)
	docker -H "unix://$mnt/docker.sock" pull -q "$ref" >/dev/null
	t1=$(now); echo "$t0 $t1"
	kill "$dockerpid"; wait "$dockerpid" 2>/dev/null || true; dockerpid=
}

tools=(berth skopeo)
command -v podman >/dev/null && tools+=(podman) || echo "bench: podman not installed (scripts/deps.sh --bench); skipped" >&2
command -v dockerd >/dev/null && tools+=(docker) || echo "bench: dockerd not installed (scripts/deps.sh --bench); skipped" >&2

# Runs are interleaved (berth, skopeo, podman, docker, berth, ...) so that
# whatever else the machine does during the benchmark falls on every tool.
declare -A speeds
for i in $(seq "$runs"); do
	for tool in "${tools[@]}"; do
		"run_$tool" >"$work/times"
		read -r t0 t1 <"$work/times"
		s=$(awk -v b="$bytes" -v a="$t0" -v z="$t1" 'BEGIN{printf "%.1f", b/1e6/(z-a)}')
		speeds[$tool]+="$s "
		echo "  $tool run $i: $(awk -v a="$t0" -v z="$t1" 'BEGIN{printf "%.2f", z-a}') s, $s MB/s" >&2
	done
done
# shellcheck source=bench/record.sh
. "$here/record.sh"
for tool in "${tools[@]}"; do
	# shellcheck disable=SC2086
	record "pull a $mb MB image in ${#dirs[@]} layers from a local registry, cold" "$tool" MB/s higher ${speeds[$tool]}
done
for tool in "${tools[@]}"; do
	results[$tool]=$(printf '%s\n' ${speeds[$tool]} | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
done

echo
printf '%-8s %10s %14s\n' tool "MB/s" "berth is"
for tool in "${tools[@]}"; do
	r=$(awk -v b="${results[berth]}" -v x="${results[$tool]}" 'BEGIN{printf "%.2fx", b/x}')
	printf '%-8s %10s %14s\n' "$tool" "${results[$tool]}" "$r"
done
