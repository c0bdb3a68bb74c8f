#!/usr/bin/env bash
# demo.sh runs berth's main job end to end with no internet: it makes a
# busybox image from Debian's busybox-static, imports it, pushes it to
# berth's own registry (`berth registry serve`) on 127.0.0.1, removes it,
# pulls it back into an empty store, saves and loads it, and verifies the
# stores.
#
# The berth CLI is a client of the berth daemon. The demo starts its own
# daemons, each with a private root, exec root and socket under a temporary
# directory, and stops them at the end: it never touches /var/lib/berth or
# a daemon already running on /run/berth/berth.sock. It ends with
# containers: a run, a service with logs and exec, and the daemon killed
# with -9 under it and started again.
#
# Usage: scripts/demo.sh [path/to/berth]
set -euo pipefail
berth=$(realpath "${1:-bin/berth}")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
regpid=
declare -A dpid
cleanup() {
	set +e
	for name in "${!dpid[@]}"; do
		# Containers first (a failed demo may leave one), then the daemon.
		BERTH_HOST=unix://$work/$name.sock "$berth" ps -aq 2>/dev/null |
			xargs -r env BERTH_HOST="unix://$work/$name.sock" "$berth" rm -f >/dev/null 2>&1
		kill "${dpid[$name]}" 2>/dev/null
		wait "${dpid[$name]}" 2>/dev/null
		# Networks outlive their daemon, as containers do: remove them.
		"$berth" daemon --root "$work/$name/root" --exec-root "$work/$name/run" --teardown-networks
	done
	grep " $work/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
	# berth's parent cgroup, if no other daemon uses it (rmdir refuses a busy one).
	rmdir /sys/fs/cgroup/*/berth /sys/fs/cgroup/berth 2>/dev/null
	if [[ -n $regpid ]]; then
		kill "$regpid" 2>/dev/null
		wait "$regpid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# daemon NAME starts `berth daemon` on $work/NAME.sock with its own root
# and exec root, and waits until its API answers.
daemon() {
	local sock=$work/$1.sock
	"$berth" daemon --root "$work/$1/root" --exec-root "$work/$1/run" -H "unix://$sock" \
		--config "$work/config.json" >"$work/$1.log" 2>&1 &
	dpid[$1]=$!
	for _ in $(seq 200); do
		curl -fsS --unix-socket "$sock" http://berth/_ping >/dev/null 2>&1 && return 0
		kill -0 "${dpid[$1]}" 2>/dev/null || break
		sleep 0.05
	done
	echo "demo: the berth daemon $1 did not start:" >&2
	cat "$work/$1.log" >&2
	exit 1
}

# use NAME points the CLI (BERTH_HOST) at daemon NAME.
use() {
	export BERTH_HOST=unix://$work/$1.sock
	printf '\n\033[2m# BERTH_HOST=%s (daemon "%s", a store of its own)\033[0m\n' "$BERTH_HOST" "$1"
}

daemon main
daemon fresh
daemon other

bash "$here/mkbase.sh" "$work/rootfs.tar" >/dev/null
# A fixed creation time makes the import reproducible: the same image ID on
# every run and every machine with the same busybox. The CLI sends it to
# the daemon with the import.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1767225600}
use main
step "$berth" import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
	--message 'busybox from Debian busybox-static' "$work/rootfs.tar" busybox:latest

# A local registry with its own storage on a free loopback port.
port=
for _ in $(seq 50); do
	p=$((20000 + RANDOM % 20000))
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[[ -n $port ]] || { echo "demo: no free port" >&2; exit 1; }
# berth's own registry: the same binary, no daemon needed.
"$berth" registry serve --root "$work/registry" --addr "127.0.0.1:$port" >"$work/registry.log" 2>&1 &
regpid=$!
for _ in $(seq 100); do
	curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
	sleep 0.05
done

reg=127.0.0.1:$port
step "$berth" tag busybox:latest "$reg/demo/busybox:1"
step "$berth" push "$reg/demo/busybox:1"
step skopeo inspect --tls-verify=false --format '{{.Digest}} {{.Layers}}' "docker://$reg/demo/busybox:1"
step "$berth" rmi "$reg/demo/busybox:1"
# A cold pull into an empty store.
use fresh
step "$berth" pull "$reg/demo/busybox:1"
step "$berth" images --digests
step "$berth" save -o "$work/busybox.tar" "$reg/demo/busybox:1"
step "$berth" system check
use other
step "$berth" load -i "$work/busybox.tar"
step "$berth" image inspect --format '{{.Id}} {{.RepoTags}} {{.Config.Cmd}}' "$reg/demo/busybox:1"
use main
step "$berth" images
step "$berth" history busybox
# Containers, with the embedded runtime: run, a service, logs, exec,
# a daemon killed under it, stop, rm.
step "$berth" run --rm busybox echo hello from a berth container
step "$berth" run -d --name demo-svc busybox sh -c 'trap "exit 0" TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done'
sleep 0.5
step "$berth" ps
step "$berth" exec demo-svc sh -c 'echo "pid 1 is: $(cat /proc/1/comm); hostname: $(hostname)"'
printf '\n\033[2m# kill -9 the daemon: the container keeps running under its shim\033[0m\n'
kill -9 "${dpid[main]}"; wait "${dpid[main]}" 2>/dev/null || true
sleep 0.5
daemon main
step "$berth" ps
step "$berth" logs --tail 2 demo-svc
step "$berth" stop demo-svc
step "$berth" inspect -f '{{.State.Status}} exit={{.State.ExitCode}}' demo-svc
step "$berth" rm demo-svc
# Networking: a user network with DNS by name, and a port published on
# 127.0.0.1 (an ephemeral host port, so the demo never collides).
step "$berth" network create demo-net
step "$berth" run -d --name demo-web --network demo-net -p 127.0.0.1::80 busybox \
	sh -c 'mkdir -p /www && echo hello from demo-web > /www/index.html && exec httpd -f -p 80 -h /www'
hostport=$("$berth" port demo-web 80 | sed 's/.*://')
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$hostport/" >/dev/null 2>&1 && break; sleep 0.1; done
step curl -fsS "http://127.0.0.1:$hostport/"
step "$berth" run --rm --network demo-net busybox wget -qO- http://demo-web/
step "$berth" rm -f demo-web
step "$berth" network rm demo-net
step "$berth" system df
step "$berth" system check
printf '\n\033[1mberth works:\033[0m import, push, pull, save, load, check, containers that outlive their daemon, networks with DNS by name and published ports, on three private daemons.\n'
printf 'Try: %s pull busybox; %s images (with no -H, the CLI starts a daemon on /run/berth/berth.sock if none answers)\n' "$berth" "$berth"
