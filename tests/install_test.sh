#!/usr/bin/env bash
# Installs anybit from BUILD into a temporary prefix and builds examples/consumer against the package.
# Usage: install_test.sh BUILD_DIR   (run from the repository root)
set -euo pipefail
build="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/lib/cmake/anybit/anybitConfig.cmake"
test -f "$tmp/prefix/include/anybit/programs/matmul_api.h"
test -x "$tmp/prefix/bin/vmc"
cmake -S examples/consumer -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/consumer" -j2 >/dev/null
# The installed library finds its simulator runtime without the build tree.
ANYBIT_SIM_LIBRARY=embedded ANYBIT_CACHE_DIR="$tmp/cache" "$tmp/consumer/consumer"
"$tmp/prefix/bin/vmc" types --decode f4e2m1 | grep -q '^0x7  0b0111  6$'
echo "install test passed"
