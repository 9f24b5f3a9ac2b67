#!/usr/bin/env bash
# vmc bench end to end (label compile): the CI-sized report, validated for structure, and its errors.
# Usage: bench_cli_test.sh PATH/TO/vmc
set -euo pipefail
vmc="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$vmc" bench --formats int4,f6e3m2 --M 1 --NK 4096x4096 --out "$tmp/r" >"$tmp/out.txt"
cat "$tmp/out.txt"
grep -q "times are modeled" "$tmp/out.txt"
python3 - "$tmp/r" <<'PY'
import json, sys, os
d = sys.argv[1]
r = json.load(open(os.path.join(d, "report.json")))
assert len(r["rows"]) == 2, r["rows"]
for row in r["rows"]:
    for key in ["format", "M", "N", "K", "schedule", "registers", "spill_bytes", "shared_bytes", "occupancy", "sass",
                "loop_every", "slots_per_1024_weights", "copies_16_bytes", "minimum_bytes", "kernel_bytes", "modeled"]:
        assert key in row, key
    assert row["M"] == 1 and row["N"] == 4096 and row["K"] == 4096
    assert row["spill_bytes"] == 0 and row["copies_narrow"] == 0 and row["copies_16_bytes"] > 0
    assert row["minimum_bytes"] > 4096 * 4096 * 4 / 8, row["minimum_bytes"]
    assert 0.5 < row["minimum_bytes"] / row["kernel_bytes"] <= 1.0, (row["minimum_bytes"], row["kernel_bytes"])
    assert row["minimum_bytes"] <= row["dram_bytes"] <= row["kernel_bytes"], (row["minimum_bytes"], row["dram_bytes"])
    assert set(row["modeled"]) == {"A100-80GB", "H100 SXM", "H200"}
    for m in row["modeled"].values():
        assert m["modeled_s"] >= m["roofline_s"] > 0 and m["modeled_s"] == max(m["memory_s"], m["mma_s"], m["issue_s"])
    if row["sass"]:
        assert row["loop_counts"]["HMMA"] > 0 and row["slots_per_1024_weights"] > 0
assert [row["format"] for row in r["rows"]] == ["int4 f16 g128", "f6e3m2 f16 g128"]
assert len(r["budgets"]) in (3, 4) and all(isinstance(b["pass"], bool) for b in r["budgets"])
assert r["passed"] == all(b["pass"] for b in r["budgets"])
md = open(os.path.join(d, "report.md")).read()
assert "modeled" in md and "## Budgets" in md and md.count("| int4 f16 g128 |") == 1
png = open(os.path.join(d, "speedup.png"), "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
print("report structure: ok")
PY
# Errors: an existing report is kept, malformed lists and unknown architectures are named.
if "$vmc" bench --formats int4 --M 1 --NK 4096x4096 --out "$tmp/r" 2>"$tmp/err"; then echo "FAIL: replaced a report"; exit 1; fi
grep -q "exists; use --force" "$tmp/err"
if "$vmc" bench --formats int4 --M 1 --NK 4096 --out "$tmp/x" 2>"$tmp/err"; then echo "FAIL: bad --NK"; exit 1; fi
grep -q "is not of the form NxK" "$tmp/err"
if "$vmc" bench --formats int4 --M 0 --out "$tmp/x" 2>"$tmp/err"; then echo "FAIL: bad --M"; exit 1; fi
grep -q "'0' is not a positive integer" "$tmp/err"
if "$vmc" bench --formats int4 --arch sm_70 --out "$tmp/x" 2>"$tmp/err"; then echo "FAIL: bad --arch"; exit 1; fi
grep -q "unknown architecture 'sm_70'" "$tmp/err"
if "$vmc" bench --formats int4,int9 --out "$tmp/x" 2>"$tmp/err"; then echo "FAIL: bad format"; exit 1; fi
grep -q "unknown data type 'int9'" "$tmp/err"
if [ ! -e /dev/nvidia0 ]; then
  if "$vmc" bench --formats int4 --M 1 --NK 4096x4096 --gpu --out "$tmp/x" 2>"$tmp/err"; then echo "FAIL: --gpu without a GPU"; exit 1; fi
  grep -q -- "--gpu: no CUDA driver" "$tmp/err"
fi
echo "bench cli: ok"
