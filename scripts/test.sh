#!/usr/bin/env bash
# The whole test run: dependencies, the format check, a debug build of everything, then every test.
# The tests build Examples/HelloPlugin with its own `swift build` and the C plugins with gcc.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The sources follow .swift-format (swift-format ships with the toolchain).
scripts/check-format.sh
swift build
# The example plugin is built out of the tree before the tests, so that no test waits for it.
scripts/build-example.sh
swift test
