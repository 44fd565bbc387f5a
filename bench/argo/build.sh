#!/usr/bin/env bash
# Builds the Argo Rollouts controller (default v1.10.2) from the Go module proxy into
# ~/.cache/cutover-bench/argo-rollouts-<version>/rollouts-controller and prints its path.
# A wrapper module requires argo-rollouts and copies the replace block of its go.mod (Go ignores
# replace directives of dependencies). Takes 2–3 minutes on 2 cores; run it with `nice -n 10`.
#
#   bench/argo/build.sh [version]        # then: ARGO_ROLLOUTS_BIN=<printed path> npm run bench
set -euo pipefail
VERSION="${1:-v1.10.2}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.26.10}"
export GOFLAGS="${GOFLAGS:--mod=mod}"
OUT="${HOME}/.cache/cutover-bench/argo-rollouts-${VERSION}"
BIN="${OUT}/rollouts-controller"
if [[ -x "${BIN}" ]]; then echo "${BIN}"; exit 0; fi
mkdir -p "${OUT}"
WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT
cd "${WORK}"
MODDIR="$(go mod download -json "github.com/argoproj/argo-rollouts@${VERSION}" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
{
  echo "module cutover.bench/argo-rollouts-wrapper"
  echo
  grep -E '^go ' "${MODDIR}/go.mod"
  echo
  echo "require github.com/argoproj/argo-rollouts ${VERSION}"
  echo
  sed -n '/^replace (/,/^)/p' "${MODDIR}/go.mod"
} > go.mod
go get "github.com/argoproj/argo-rollouts/cmd/rollouts-controller@${VERSION}" >&2
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "${BIN}.tmp" github.com/argoproj/argo-rollouts/cmd/rollouts-controller >&2
mv "${BIN}.tmp" "${BIN}"
# The CRDs this version needs, next to the binary (bench/argo.ts installs them on the test bed).
cp "${MODDIR}/manifests/crds/rollout-crd.yaml" "${MODDIR}/manifests/crds/analysis-run-crd.yaml" \
   "${MODDIR}/manifests/crds/analysis-template-crd.yaml" "${MODDIR}/manifests/crds/cluster-analysis-template-crd.yaml" \
   "${MODDIR}/manifests/crds/experiment-crd.yaml" "${OUT}/"
chmod u+w "${OUT}"/*.yaml
echo "${BIN}"
