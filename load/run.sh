#!/usr/bin/env bash
# Run one load profile: load/run.sh PROFILE [extra k6 run arguments]
#   PROFILE is a script in load/: baseline, optimized, spike, soak, smoke, ratelimit, stream,
#   cache.
# BASE_URL unset: starts the local stack (scripts/devstack.py) first and stops it afterwards.
# K6 overrides the k6 binary (default bin/k6, see load/install-k6.sh). Summaries go to
# RESULTS_DIR (default load/results), the Markdown/PNG report to REPORT_DIR (default RESULTS_DIR).
# Exits with k6's exit code (99 when a threshold failed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

PROFILE="${1:?usage: load/run.sh PROFILE [k6 run arguments]}"
shift
SCRIPT="load/${PROFILE}.js"
K6="${K6:-${ROOT}/bin/k6}"
PYTHON="${PYTHON:-${ROOT}/.venv/bin/python}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-120}"
export RESULTS_DIR="${RESULTS_DIR:-load/results}"
REPORT_DIR="${REPORT_DIR:-${RESULTS_DIR}}"
SUMMARY="${RESULTS_DIR}/${PROFILE}.json"

die() { echo "load/run.sh: $*" >&2; exit 2; }

[[ -f "${SCRIPT}" ]] || die "no profile ${SCRIPT}"
command -v "${K6}" >/dev/null || die "k6 not found at ${K6}: run load/install-k6.sh or set K6=..."

stack_pid=""
stack_dir=""

# shellcheck disable=SC2317  # called by the EXIT trap
stop_stack() {
  if [[ -n "${stack_pid}" ]] && kill -0 "${stack_pid}" 2>/dev/null; then
    kill -TERM "${stack_pid}"
    wait "${stack_pid}" || true
  fi
  if [[ -n "${stack_dir}" ]]; then rm -rf "${stack_dir}"; fi
}

gateway_url() {
  "${PYTHON}" -c 'import json, sys; print(json.load(open(sys.argv[1]))["gateway"])' "$1" 2>/dev/null
}

start_stack() {
  [[ -f scripts/devstack.py ]] || die "BASE_URL is unset and scripts/devstack.py is missing"
  stack_dir="$(mktemp -d)"
  local ready="${stack_dir}/ready.json" log="${RESULTS_DIR}/${PROFILE}.devstack.log"
  trap stop_stack EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  echo "Starting the local stack (log: ${log})..."
  "${PYTHON}" scripts/devstack.py --ready-file "${ready}" >"${log}" 2>&1 &
  stack_pid=$!
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until [[ -s "${ready}" ]] && BASE_URL="$(gateway_url "${ready}")"; do
    if ! kill -0 "${stack_pid}" 2>/dev/null; then
      tail -n 40 "${log}" >&2
      die "the local stack exited before it was ready"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 40 "${log}" >&2
      die "the local stack was not ready within ${READY_TIMEOUT_S} s"
    fi
    sleep 0.5
  done
  export BASE_URL
}

mkdir -p "${RESULTS_DIR}" "${REPORT_DIR}"
rm -f "${SUMMARY}"
# A profile may need settings of its own in the stack started here (load/<profile>.env).
if [[ -z "${BASE_URL:-}" && -f "load/${PROFILE}.env" ]]; then
  set -a
  # shellcheck disable=SC1090
  source "load/${PROFILE}.env"
  set +a
fi
if [[ -z "${BASE_URL:-}" ]]; then start_stack; fi
echo "k6 ${PROFILE} against ${BASE_URL}"

status=0
"${K6}" run "$@" "${SCRIPT}" || status=$?

if [[ -f "${SUMMARY}" ]]; then
  "${PYTHON}" load/report.py "${SUMMARY}" --out "${REPORT_DIR}/${PROFILE}" || {
    report_status=$?
    if ((status == 0)); then status=${report_status}; fi
  }
fi
exit "${status}"
