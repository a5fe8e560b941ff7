#!/usr/bin/env bash
# Checks that the Swift sources follow .swift-format (swift-format ships with the toolchain).
# Generated code is left out. `scripts/check-format.sh --fix` rewrites the files instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.swift' | grep -v '/Generated/' | grep -v '^SDK/Sources/BerthProto/Contracts/')
if [ "${1:-}" = "--fix" ]; then
  swift format format --in-place --configuration .swift-format "${files[@]}"
else
  swift format lint --strict --configuration .swift-format "${files[@]}"
fi
