#!/usr/bin/env bash
# Installs what anybit needs from Debian's packages (when missing), configures and builds it (Release, -j2).
#   tools/setup.sh          build
#   tools/setup.sh --test        build, then run the test suite (ctest; GPU tests skip with a reason without a GPU)
#   tools/setup.sh --test-long   build, then run the long tier (the full quantized-matmul cross product)
#   tools/setup.sh --deps-only   install what is missing, nothing else (tools/sanitize.sh, tools/fuzz.sh)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${ANYBIT_BUILD_DIR:-$root/build}"

packages=(cmake g++ make libfmt-dev libcli11-dev doctest-dev libssl-dev libboost-context-dev libpng-dev)
# Callers add what their job needs (tools/fuzz.sh: clang and its libFuzzer runtime).
read -r -a extra <<<"${ANYBIT_EXTRA_PACKAGES:-}"
packages+=("${extra[@]}")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "anybit setup: installing ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo"; else
    echo "anybit setup: missing packages: ${missing[*]}" >&2
    echo "  install them as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" ||
    { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${missing[@]}"; }
fi

if [ "${1:-}" = "--deps-only" ]; then exit 0; fi

# A SASS disassembler for `vmc stats` (optional: everything falls back to PTX counts without it).
if ! command -v nvdisasm >/dev/null && [ ! -x /usr/local/cuda/bin/nvdisasm ] && ! ls "$root"/.tools/nvidia/*/bin/nvdisasm >/dev/null 2>&1; then
  if command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check --target "$root/.tools" nvidia-cuda-nvdisasm >/dev/null 2>&1 ||
      echo "anybit setup: note: could not install nvdisasm from PyPI; vmc stats will report PTX counts only"
  else
    echo "anybit setup: note: no pip to install nvdisasm; vmc stats will report PTX counts only"
  fi
fi

cuda_hint=()
if [ -d /usr/local/cuda ]; then cuda_hint=(-DCUDAToolkit_ROOT=/usr/local/cuda); fi
if ! command -v nvcc >/dev/null && [ ! -x /usr/local/cuda/bin/nvcc ] && [ -z "${CUDAToolkit_ROOT:-}" ]; then
  echo "anybit setup: the CUDA Toolkit (for NVRTC) was not found; install it under /usr/local/cuda or set CUDAToolkit_ROOT" >&2
  exit 1
fi

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "${cuda_hint[@]}" >/dev/null
cmake --build "$build" -j2

case "${1:-}" in
  --test) ctest --test-dir "$build" --output-on-failure -j2 -LE long ;;
  --test-long) ctest --test-dir "$build" --output-on-failure -L long ;;
  "") ;;
  *) echo "anybit setup: unknown option '$1' (use --test, --test-long or --deps-only)" >&2; exit 2 ;;
esac
