# record.sh: the result lines bench/report reads. Sourced by every bench
# script; a no-op unless BENCH_RESULTS names the file to append to.
# shellcheck shell=bash

# record WORKLOAD TOOL UNIT lower|higher SAMPLE...
record() {
	[[ -n ${BENCH_RESULTS:-} ]] || return 0
	python3 - "$@" >>"$BENCH_RESULTS" <<'PY'
import json, sys
w, tool, unit, better, *samples = sys.argv[1:]
print(json.dumps({"workload": w, "tool": tool, "unit": unit, "better": better,
                  "samples": [float(s) for s in samples]}))
PY
}
