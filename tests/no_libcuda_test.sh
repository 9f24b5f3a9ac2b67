#!/usr/bin/env bash
# Nothing anybit builds may link the CUDA driver: libcuda is dlopen'ed, so builds and tests run without it.
# Usage: no_libcuda_test.sh FILE...
set -u
status=0
for f in "$@"; do
  if ldd "$f" 2>/dev/null | grep -q 'libcuda\.so'; then
    echo "FAIL: $f links libcuda:"
    ldd "$f" | grep libcuda
    status=1
  fi
done
[ "$status" = 0 ] && echo "no binary links libcuda"
exit "$status"
