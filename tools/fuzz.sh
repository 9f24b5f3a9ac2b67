#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ with clang 16 (std::source_location needs 15 or newer), ASan and UBSan (build-fuzz/) and runs each for a
# bounded time from its checked-in seed corpus; a crash, hang (10 s per input), leak, sanitizer report or
# internal error fails the run and leaves the input in build-fuzz/artifacts/ (turn it into a regression test).
#   tools/fuzz.sh [SECONDS] [HARNESS...]   SECONDS per harness (default 60); harnesses: vm_parser
#                                         layout_parser dtype pipeline (default all)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${ANYBIT_FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${1:-60}"
shift || true
harnesses=("$@")
((${#harnesses[@]})) || harnesses=(vm_parser layout_parser dtype pipeline)
ANYBIT_EXTRA_PACKAGES="clang-16 libclang-rt-16-dev" "$root/tools/setup.sh" --deps-only
cuda_hint=()
if [ -d /usr/local/cuda ]; then cuda_hint=(-DCUDAToolkit_ROOT=/usr/local/cuda); fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-16 -DANYBIT_FUZZ=ON \
  "${cuda_hint[@]}" >/dev/null
cmake --build "$build" -j2 --target "${harnesses[@]/#/fuzz_}"
mkdir -p "$build/artifacts"
export ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
failed=()
for h in "${harnesses[@]}"; do
  work=$(mktemp -d)  # new inputs go here; the checked-in seeds are only read
  echo "== fuzz_$h for ${seconds}s"
  if "$build/fuzz/fuzz_$h" "$work" "$root/fuzz/corpus/$h" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=4096 -max_len=8192 -artifact_prefix="$build/artifacts/$h-" -print_final_stats=1 \
      >"$build/fuzz_$h.log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$build/fuzz_$h.log" | tr '\n' ' '
    echo "($(ls "$work" | wc -l) new inputs) ok"
  else
    tail -60 "$build/fuzz_$h.log"
    failed+=("$h")
  fi
  rm -rf "$work"
done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $build/artifacts/)" >&2
  exit 1
fi
echo "fuzz: every harness ran ${seconds}s without a finding"
