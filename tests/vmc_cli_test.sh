#!/usr/bin/env bash
# vmc end to end: every command on the shipped examples, and clear errors for bad input.
# Usage: vmc_cli_test.sh PATH/TO/vmc   (run from the repository root)
set -uo pipefail
vmc="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

pass() { echo "ok:   $1"; }
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }
# expect_ok NAME GREP_PATTERN -- COMMAND...: exit 0 and stdout matching the pattern.
expect_ok() {
  local name=$1 pattern=$2; shift 3
  local out
  if out=$("$@" 2>&1) && grep -qE -- "$pattern" <<<"$out"; then pass "$name"; else fail "$name"; echo "$out" | head -20; fi
}
# expect_error NAME GREP_PATTERN -- COMMAND...: non-zero exit and the message on stderr.
expect_error() {
  local name=$1 pattern=$2; shift 3
  local out
  if out=$("$@" 2>&1); then fail "$name (exited 0)"; echo "$out" | head -5; return; fi
  if grep -qE -- "$pattern" <<<"$out"; then pass "$name"; else fail "$name"; echo "$out" | head -20; fi
}

expect_ok "version" '^vmc \(anybit [0-9]+\.[0-9]+\.[0-9]+\), NVRTC [0-9]+\.[0-9]+$' -- "$vmc" --version
expect_ok "types table" '^f6e3m2 +6 +-28 +28' -- "$vmc" types
expect_ok "types lists fp4 values" '^f4e2m1 .*\{-6, -4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, 4, 6\}' -- "$vmc" types
out=$("$vmc" types --decode f4e2m1)
[ "$(wc -l <<<"$out")" = 16 ] && grep -q '^0x7  0b0111  6$' <<<"$out" && grep -q '^0xf  0b1111  -6$' <<<"$out" &&
  pass "types --decode f4e2m1: 16 codes" || { fail "types --decode f4e2m1"; echo "$out"; }
expect_ok "types --decode f8e4m3 NaN" '^0x7f  0b01111111  nan$' -- "$vmc" types --decode f8e4m3
expect_error "types --decode bad name" "unknown data type 'f4e9m1'; valid types" -- "$vmc" types --decode f4e9m1
expect_error "types --decode f32 refused" 'at most 16 bits' -- "$vmc" types --decode f32

expect_ok "layout summary" '^threads: +32$' -- "$vmc" layout "column_local(2,2) * spatial(8,4) * local(1,2)"
out=$("$vmc" layout "local(2,1) * spatial(8,4) * local(1,2)" --table)
# Row 9 of the C fragment: thread 4 (g=1), second register pair.
grep -q '^t4:2 t4:3 t5:2 t5:3 t6:2 t6:3 t7:2 t7:3$' <<<"$out" && pass "layout --table" || { fail "layout --table"; echo "$out"; }
expect_ok "layout canonical form" '^layout: +spatial\(8,4\)$' -- "$vmc" layout "spatial(8,1) * spatial(1,4)"
expect_error "layout parse error" 'at column 16: expected local, spatial' -- "$vmc" layout "spatial(8,4) * lcal(2)"

for f in examples/*.vm; do
  expect_ok "check $f" ': ok: program' -- "$vmc" check "$f"
  "$vmc" fmt "$f" >"$tmp/fmt.vm" && cmp -s "$f" "$tmp/fmt.vm" && pass "fmt $f is canonical" || fail "fmt $f"
done
sed 's/  /    /' examples/vector_add.vm >"$tmp/messy.vm"
cp "$tmp/messy.vm" "$tmp/messy_copy.vm"
"$vmc" fmt "$tmp/messy.vm" >/dev/null && cmp -s "$tmp/messy.vm" "$tmp/messy_copy.vm" && pass "fmt leaves the file alone" ||
  fail "fmt modified its input"
"$vmc" fmt -i "$tmp/messy.vm" && cmp -s "$tmp/messy.vm" examples/vector_add.vm && pass "fmt -i rewrites in place" ||
  fail "fmt -i"

printf 'program p() grid(1) warps(1) {\n  %%x = load_global %%nope[0] : f32[32] @ spatial(32)\n}\n' >"$tmp/bad.vm"
expect_error "check reports verifier errors" 'bad.vm:2:3: load_global: %nope is not defined' -- "$vmc" check "$tmp/bad.vm"
printf 'program p() grid(1) warps(1) {\n  %%x = = 3\n}\n' >"$tmp/syntax.vm"
expect_error "check reports syntax errors" 'syntax.vm:2:8: expected an instruction' -- "$vmc" check "$tmp/syntax.vm"
expect_error "check missing file" 'does not exist|File does not exist' -- "$vmc" check "$tmp/missing.vm"

run_interp() { "$vmc" interp examples/tiled_matmul.vm --param M=33 --param N=20 --param K=40 --random-inputs 7 "$@"; }
a=$(run_interp) && b=$(run_interp) && [ "$a" = "$b" ] && grep -qE '^C +2640 bytes  fnv1a64 [0-9a-f]{16}$' <<<"$a" &&
  pass "interp is deterministic and sizes buffers from views" || { fail "interp determinism"; echo "$a"; echo "$b"; }
c=$("$vmc" interp examples/tiled_matmul.vm --param M=33 --param N=20 --param K=40 --random-inputs 8)
[ "$a" != "$c" ] && pass "interp seed changes inputs" || fail "interp seed"
run_interp --dump "$tmp/dump" >/dev/null && [ "$(stat -c %s "$tmp/dump/C.bin")" = 2640 ] && pass "interp --dump" || fail "interp --dump"
expect_error "interp --dump refuses to overwrite" "exists; pass --force" -- run_interp --dump "$tmp/dump"
run_interp --dump "$tmp/dump" --force >/dev/null && pass "interp --dump --force" || fail "interp --dump --force"
expect_error "interp missing param" 'needs --param K=VALUE' -- "$vmc" interp examples/tiled_matmul.vm --param M=3 --param N=4 --random-inputs 1
expect_error "interp unknown param" "has no parameter 'Q'" -- "$vmc" interp examples/tiled_matmul.vm --param Q=3 --random-inputs 1
expect_error "interp bad param value" "'x3' is not an integer" -- "$vmc" interp examples/tiled_matmul.vm --param M=x3 --random-inputs 1
expect_error "interp missing seed" 'random-inputs is required' -- "$vmc" interp examples/tiled_matmul.vm --param M=3
expect_error "unknown command" 'vmc|Usage|subcommand|not expected' -- "$vmc" frobnicate

export ANYBIT_CACHE_DIR="$tmp/cache"
expect_ok "compile to CUDA" '^extern "C" __global__ void __maxnreg__\(255\) vector_add\(' -- "$vmc" compile examples/vector_add.vm
expect_ok "compile to PTX uses 16-byte loads when n%4" 'ld\.global\.v4\.u32' -- "$vmc" compile examples/vector_add.vm --emit ptx --assume n%4
expect_ok "compile --emit vm is the program after passes" '^program vector_add\(' -- "$vmc" compile examples/vector_add.vm --emit vm
"$vmc" compile examples/tiled_matmul.vm --emit cubin --arch sm_90 -o "$tmp/mm.cubin" && [ -s "$tmp/mm.cubin" ] &&
  ls "$tmp/cache"/*.kernel >/dev/null 2>&1 && pass "compile cubin through the cache" || fail "compile cubin"
"$vmc" compile examples/tiled_matmul.vm --emit header -o "$tmp/anybit_runtime.cuh" && "$vmc" compile examples/tiled_matmul.vm -o "$tmp/k.cu" &&
  grep -q 'namespace ab' "$tmp/anybit_runtime.cuh" && pass "compile --emit header" || fail "compile --emit header"
expect_error "compile cubin needs -o" 'give -o FILE' -- "$vmc" compile examples/vector_add.vm --emit cubin
expect_error "compile bad arch" "unknown architecture 'sm99'" -- "$vmc" compile examples/vector_add.vm --emit ptx --arch sm99
expect_error "compile bad assume" "must be NAME%D with D a power of two" -- "$vmc" compile examples/vector_add.vm --assume n%3
expect_error "compile assume unknown param" "has no integer parameter 'q'" -- "$vmc" compile examples/vector_add.vm --assume q%4
expect_ok "stats" '^registers [0-9]+, spill stores 0 bytes, spill loads 0 bytes' -- "$vmc" stats examples/tiled_matmul.vm --assume K%16 --assume N%16
expect_ok "stats counts mma" 'mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.f16\.f16\.f32' -- "$vmc" stats examples/tiled_matmul.vm
expect_ok "stats --json" '^\{"kernel": "tiled_matmul", "arch": "sm_90", "threads": 128, "registers": [0-9]+' -- "$vmc" stats examples/tiled_matmul.vm --arch sm_90 --json --no-cache

sed 's/ @ spatial(64) \* local(4)//' examples/vector_add.vm >"$tmp/open.vm"
expect_ok "interp infers open layouts" '^c +4000 bytes' -- "$vmc" interp "$tmp/open.vm" --param n=1000 --random-inputs 1
expect_ok "compile --emit vm shows inferred layouts" '%x = load_global %va\[base\] : f32\[256\] @ spatial\(64\) \* local\(4\)' -- "$vmc" compile "$tmp/open.vm" --emit vm

expect_ok "run --sim --check interp (mma, ldmatrix, cp.async)" '^check against the interpreter .*: PASS$' -- "$vmc" run examples/tiled_matmul.vm --sim --param M=45 --param N=40 --param K=72 --random-inputs 3 --check interp --assume K%8 --assume N%8
expect_ok "run --sim is bit-exact where no sums reorder" '^check against the interpreter \(bit-exact\): PASS$' -- "$vmc" run examples/dequant_int3.vm --sim --param blocks=3 --random-inputs 4 --check interp
expect_ok "run --sim reports counters" '^simulated: global [0-9]+ bytes read' -- "$vmc" run examples/vector_add.vm --sim --param n=1000 --random-inputs 1
if ! ls /dev/nvidia0 >/dev/null 2>&1; then
  expect_error "run --gpu without a GPU says why" 'no CUDA driver|no GPU|did not initialize' -- "$vmc" run examples/vector_add.vm --gpu --param n=100 --random-inputs 1
fi
expect_error "run needs --sim or --gpu" 'needs --sim or --gpu' -- "$vmc" run examples/vector_add.vm --param n=100 --random-inputs 1

expect_ok "matmul int3 g128 on the simulator" 'check against the double reference: .*PASS$' -- "$vmc" matmul --wtype int3 --group 128 --M 5 --N 80 --K 256 --run sim --check
expect_ok "matmul uint4 with integer zeros, bf16" 'PASS$' -- "$vmc" matmul --wtype uint4 --atype bf16 --zeros int --group 64 --M 17 --N 64 --K 128 --run sim --check
expect_ok "matmul f6e3m2 emits CUDA" 'quant_matmul_f6e3m2_f16_g32' -- "$vmc" matmul --wtype f6e3m2 --group 32 --K 64 --emit cuda
expect_error "matmul rejects bad shapes" 'N and K must be multiples of 16, got N=100' -- "$vmc" matmul --wtype int4 --N 100
expect_error "matmul rejects int zeros on signed formats" 'integer zero points need an unsigned integer format, not int4' -- "$vmc" matmul --wtype int4 --zeros int
expect_error "matmul rejects unknown formats" "unknown data type 'int9'" -- "$vmc" matmul --wtype int9
expect_ok "matmul chooses weights on A and split-K for M = 1" 'schedule w4 m1 s4 k[0-9]+ wa .*splitk_reduce' -- "$vmc" matmul --wtype int4 --M 1 --N 1024 --K 4096
expect_ok "matmul sm_90 takes 4 stages" 'schedule w4 m1 s4 ' -- "$vmc" matmul --wtype int4 --M 16 --N 1024 --K 1024 --arch sm_90
expect_ok "matmul --schedule split-K on the simulator" 'PASS$' -- "$vmc" matmul --wtype f5e2m2 --group 64 --M 3 --N 48 --K 256 --run sim --check --schedule 'w2 m1 s2 k3 wa'
expect_error "matmul rejects a malformed --schedule" "schedule 'w4 m1' is not of the form" -- "$vmc" matmul --wtype int4 --schedule 'w4 m1'
expect_error "matmul rejects an unknown --arch" "unknown architecture 'sm_70'" -- "$vmc" matmul --wtype int4 --arch sm_70
if [ ! -e /dev/nvidia0 ]; then
  expect_error "matmul --tune needs a GPU" 'tuning needs a GPU' -- "$vmc" matmul --wtype int4 --M 1 --N 64 --K 256 --tune
fi

"$vmc" matmul --wtype uint3 --zeros int --bias --group 64 --M 5 --N 64 --K 128 --run sim --dump "$tmp/mm1" >/dev/null &&
  "$vmc" matmul --wtype uint3 --zeros int --bias --group 64 --M 5 --N 64 --K 128 --run sim --load "$tmp/mm1" --dump "$tmp/mm2" >/dev/null &&
  cmp -s "$tmp/mm1/C.bin" "$tmp/mm2/C.bin" && [ "$(stat -c %s "$tmp/mm1/q.bin")" = 8192 ] &&
  pass "matmul --dump then --load reproduces C" || fail "matmul --dump/--load"
expect_ok "matmul --load --check" 'PASS$' -- "$vmc" matmul --wtype uint3 --zeros int --bias --group 64 --M 5 --N 64 --K 128 --run sim --load "$tmp/mm1" --check
expect_error "matmul --load with the wrong sizes" "A.bin' has 1280 bytes; M=6 N=64 K=128 group=64 need 1536" -- "$vmc" matmul --wtype uint3 --zeros int --bias --group 64 --M 6 --N 64 --K 128 --run sim --load "$tmp/mm1"
expect_error "matmul --dump does not overwrite" 'exists; pass --force' -- "$vmc" matmul --wtype uint3 --zeros int --bias --group 64 --M 5 --N 64 --K 128 --run sim --dump "$tmp/mm1"
expect_ok "matmul --run auto falls back to the simulator" "PASS$" -- "$vmc" matmul --wtype int3 --group 128 --M 16 --N 64 --K 256 --run auto --check
expect_ok "demo passes" '^demo: PASS$' -- "$vmc" demo

if [ "$failures" != 0 ]; then echo "$failures vmc check(s) failed"; exit 1; fi
echo "all vmc checks passed"
