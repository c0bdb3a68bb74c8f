#!/usr/bin/env bash
# conformance.sh runs the OCI distribution-spec conformance suites against a
# registry: the ginkgo suite of release v1.1.1 and the redesigned suite of
# the main branch (which also pushes sha512 content, nested indexes,
# referrers and tag parameters), every workflow on.
#
# Usage: scripts/conformance.sh ROOT_URL [v1.1.1|main|all]
#
# How the suites are built, offline but for the Go module proxy:
#   main    test/conformance/main pins the suite's module at a main-branch
#           pseudo-version; `go build` fetches it and its dependencies from
#           the proxy.
#   v1.1.1  the proxy does not serve that commit of the suite's module, so
#           its source comes from a clone of opencontainers/distribution-spec
#           (the tool library's `fetch` puts one at $SPEC_REPO, below; set
#           SPEC_REPO to another git directory to use that), checked out at
#           the tag into a scratch directory; its dependencies come from the
#           proxy. Without a clone that suite is reported as not run.
# For an HTTPS registry with its own CA, set CONFORMANCE_CA to the CA's PEM
# file: the suites verify certificates and trust it through SSL_CERT_FILE.
# Binaries are cached under $CONFORMANCE_CACHE by version. Reports go to a
# temporary directory, removed at the end, or to $CONFORMANCE_OUT if set.
set -euo pipefail
url=${1:?usage: conformance.sh ROOT_URL [v1.1.1|main|all]}
which=${2:-all}
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth-conformance}
SPEC_REPO=${SPEC_REPO:-/work/.mirror/opencontainers+distribution-spec/repo}
out=${CONFORMANCE_OUT:-}
if [[ -z $out ]]; then
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$cache" "$out"
host=${url#*://}
tls=disabled
[[ $url == https://* ]] && tls=enabled
if [[ -n ${CONFORMANCE_CA:-} ]]; then
	export SSL_CERT_FILE=$CONFORMANCE_CA
fi
status=0

build_main() {
	local ver
	ver=$(awk '/distribution-spec\/conformance/ {print $2}' "$here/test/conformance/main/go.mod")
	local bin=$cache/main-$ver
	if [[ ! -x $bin ]]; then
		(cd "$here/test/conformance/main" && go build -tags tools -o "$bin.tmp" github.com/opencontainers/distribution-spec/conformance) >&2
		mv "$bin.tmp" "$bin"
	fi
	echo "$bin"
}

build_v111() {
	local bin=$cache/v1.1.1
	if [[ ! -x $bin ]]; then
		[[ -d $SPEC_REPO ]] || return 1
		local src
		src=$(mktemp -d)
		git --git-dir="$SPEC_REPO" archive v1.1.1 conformance | tar -x -C "$src"
		(cd "$src/conformance" && go test -c -o "$bin.tmp" .) >&2
		rm -rf "$src"
		mv "$bin.tmp" "$bin"
	fi
	echo "$bin"
}

run_main() {
	local bin
	bin=$(build_main)
	local log=$out/main.log
	# Sparse manifests (an image missing a layer, an index missing a
	# child) stay off, the suite's default: the spec says a manifest MUST
	# reference blobs that make up the object.
	set +e
	OCI_REGISTRY=$host OCI_TLS=$tls OCI_RESULTS_DIR=$out/main OCI_VERSION=1.1 \
		OCI_REPO1=conformance-main/repo1 OCI_REPO2=conformance-main/repo2 \
		OCI_USERNAME=${OCI_USERNAME:-} OCI_PASSWORD=${OCI_PASSWORD:-} \
		OCI_API_BLOBS_UPLOAD_CANCEL=true OCI_API_MANIFESTS_TAG_PARAM=true OCI_DATA_SHA512=true \
		"$bin" >"$log" 2>&1
	set -e
	local summary
	summary=$(awk '/^  (Pass|FAIL|Error|Skip|Disabled)\.+:/ {gsub(/\.+:/, ""); printf "%s %s, ", $1, $2}' "$log")
	if grep -q "OCI Conformance Result: Pass" "$log"; then
		echo "conformance main: PASS (${summary%, })"
	else
		echo "conformance main: FAIL (${summary%, })"
		grep -E ":\s+FAIL$" "$log" | sed 's/^/  failed: /' || true
		tail -5 "$log"
		status=1
	fi
}

run_v111() {
	local bin
	if ! bin=$(build_v111); then
		echo "conformance v1.1.1: NOT RUN (no clone of opencontainers/distribution-spec at $SPEC_REPO; set SPEC_REPO)"
		status=1
		return
	fi
	local log=$out/v1.1.1.log
	mkdir -p "$out/v1.1.1"
	set +e
	OCI_ROOT_URL=$url OCI_NAMESPACE=conformance-111/repo OCI_CROSSMOUNT_NAMESPACE=conformance-111/other \
		OCI_USERNAME=${OCI_USERNAME:-} OCI_PASSWORD=${OCI_PASSWORD:-} \
		OCI_TEST_PULL=1 OCI_TEST_PUSH=1 OCI_TEST_CONTENT_DISCOVERY=1 OCI_TEST_CONTENT_MANAGEMENT=1 \
		OCI_AUTOMATIC_CROSSMOUNT=1 OCI_REPORT_DIR=$out/v1.1.1 \
		"$bin" -ginkgo.no-color >"$log" 2>&1
	local rc=$?
	set -e
	local summary
	summary=$(grep -E "Passed \| .* Failed" "$log" | tail -1 | sed 's/^[^0-9]*//')
	if [[ $rc -eq 0 ]]; then
		echo "conformance v1.1.1: PASS ($summary)"
	else
		echo "conformance v1.1.1: FAIL ($summary)"
		grep -E "^\s+\[FAIL\]" "$log" | sed 's/^\s*/  /' || tail -20 "$log"
		status=1
	fi
}

case $which in
main) run_main ;;
v1.1.1) run_v111 ;;
all) run_v111; run_main ;;
*) echo "conformance.sh: unknown suite $which (v1.1.1, main or all)" >&2; exit 2 ;;
esac
exit $status
