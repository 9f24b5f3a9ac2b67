#!/usr/bin/env bash
# Builds anybit with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/, RelWithDebInfo) and runs
# the host tier of the tests under it; any sanitizer report fails the run.
#   tools/sanitize.sh            build and run `ctest -L host`
#   tools/sanitize.sh -R NAME    extra ctest arguments
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${ANYBIT_SANITIZE_BUILD_DIR:-$root/build-asan}"
"$root/tools/setup.sh" --deps-only
cuda_hint=()
if [ -d /usr/local/cuda ]; then cuda_hint=(-DCUDAToolkit_ROOT=/usr/local/cuda); fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DANYBIT_SANITIZE=ON "${cuda_hint[@]}" >/dev/null
cmake --build "$build" -j2
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
ctest --test-dir "$build" --output-on-failure -j2 -L host "$@"
