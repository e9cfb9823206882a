#!/usr/bin/env bash
# Install the pinned k6 into <repo>/bin/k6 by building it with the local Go toolchain.
# Idempotent: does nothing when bin/k6 already reports the pinned version or K6 names a binary.
set -euo pipefail

K6_VERSION="v1.8.1"
GO_MIN="1.25"  # the `go` directive of go.k6.io/k6@${K6_VERSION}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${ROOT}/bin/k6"

if [[ -n "${K6:-}" ]]; then
  echo "K6=${K6} is set; the load scripts use it, nothing to install"
  exit 0
fi

if [[ -x "${BIN}" ]] && "${BIN}" version 2>/dev/null | grep -q "^k6 ${K6_VERSION} "; then
  echo "k6 ${K6_VERSION} already installed at ${BIN}"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  cat >&2 <<MSG
install-k6: 'go' was not found on PATH, so k6 ${K6_VERSION} cannot be built.
Either install Go >= ${GO_MIN} (https://go.dev/doc/install) and run this script again,
or put a k6 ${K6_VERSION} binary on PATH and point the load scripts at it:
  export K6=\$(command -v k6)
MSG
  exit 1
fi

go_version="$(go env GOVERSION)"
go_version="${go_version#go}"
oldest="$(printf '%s\n%s\n' "${GO_MIN}" "${go_version}" | sort -V | head -n 1)"
if [[ "${oldest}" != "${GO_MIN}" ]]; then
  echo "install-k6: k6 ${K6_VERSION} needs Go >= ${GO_MIN}, found ${go_version};" \
    "install a newer Go or set K6=<path to a k6 binary>" >&2
  exit 1
fi

echo "Building k6 ${K6_VERSION} with $(go version) into ${ROOT}/bin (takes a few minutes)..."
start=${SECONDS}
GOBIN="${ROOT}/bin" go install "go.k6.io/k6@${K6_VERSION}"
echo "Built in $((SECONDS - start)) s: $("${BIN}" version | head -n 1)"
