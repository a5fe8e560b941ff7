#!/usr/bin/env bash
# The whole test run: dependencies, a debug build of everything, then every test.
# The tests build Examples/HelloPlugin with its own `swift build` and the C plugins with gcc.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build
swift test
