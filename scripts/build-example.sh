#!/usr/bin/env bash
# Copies Examples/HelloPlugin out of the tree, as a third party starts from it, and builds it
# there against this tree's SDK (BERTH_SDK), with its tests. The folder is kept between runs for
# its build cache. Prints the path of the built plugin. Used by scripts/test.sh before the tests (so that
# no test waits for this build) and by the integration tests themselves.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${BERTH_EXAMPLE_DIR:-/tmp/berth-example-hello}
mkdir -p "$out"
rm -rf "$out/Sources" "$out/Tests"
cp -R "$here/Examples/HelloPlugin/Package.swift" "$here/Examples/HelloPlugin/Sources" "$here/Examples/HelloPlugin/Tests" "$out/"
BERTH_SDK="$here/SDK" swift build --package-path "$out" >&2
# Its tests too (the SDK's conformance kit), so that running them later compiles nothing.
BERTH_SDK="$here/SDK" swift build --build-tests --package-path "$out" >&2
echo "$out/.build/debug/libHelloPlugin.so"
