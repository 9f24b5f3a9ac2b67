// Static analysis of SASS (nvdisasm -c text): instructions, basic blocks, loops, and the steady-state main
// loop of a kernel — the innermost loop holding the tensor-core instructions, split into the blocks every
// iteration executes and the blocks only some iterations take (the pipeline's guarded copies, a group's
// end) — plus occupancy from ptxas resources. Used by `vmc bench` and unit-tested on SASS samples.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace anybit::backend_cuda {

struct SassInstruction {
  std::uint32_t address = 0;
  std::string predicate;  // "@P0", "@!PT", "" when unconditional
  std::string opcode;     // with modifiers: "LDGSTS.E.BYPASS.128"
  std::string operands;
  std::string target;     // branch target label, if any
  // Never issued: guarded by @!PT (ptxas padding).
  bool never() const { return predicate == "@!PT"; }
};

struct SassBlock {
  std::size_t first = 0, last = 0;  // instruction indices, inclusive
  std::vector<std::size_t> successors;
};

struct SassProgram {
  std::vector<SassInstruction> instructions;
  std::vector<SassBlock> blocks;
  std::map<std::string, std::size_t> labels;  // label -> instruction index
};

// anybit::Error when the text holds no instruction.
SassProgram parse_sass(const std::string& text);

struct SassLoop {
  std::size_t header = 0;               // block index
  std::vector<std::size_t> blocks;      // the natural loop's blocks, ascending
  std::vector<std::size_t> every;       // blocks every iteration executes (they dominate the latches)
  std::vector<std::size_t> sometimes;   // the rest of the body
};

// Natural loops (from back edges), innermost first (fewest blocks).
std::vector<SassLoop> find_loops(const SassProgram& p);

// Issued instructions by opcode over a set of blocks (never-issued padding left out).
std::map<std::string, int> opcode_counts(const SassProgram& p, const std::vector<std::size_t>& blocks);
int total(const std::map<std::string, int>& counts);
// Instructions whose opcode starts with `prefix` ("HMMA", "LDG.E.128", "LDGSTS").
int count_prefix(const std::map<std::string, int>& counts, const std::string& prefix);

struct MainLoop {
  SassLoop loop;
  std::map<std::string, int> every, sometimes;  // issued instructions per iteration / in conditional blocks
};
// The innermost loop that holds HMMA instructions; nullopt when there is none.
std::optional<MainLoop> main_loop(const SassProgram& p);

// Streaming-multiprocessor limits of a GPU, for occupancy.
struct SmLimits {
  std::string name;
  int registers = 65536, max_threads = 2048, max_blocks = 32, shared_bytes = 0, register_granularity = 256;
};
SmLimits a100_limits();  // 164 KiB shared per SM (163 KiB per block)
SmLimits h100_limits();  // 228 KiB shared per SM (227 KiB per block)

struct Occupancy {
  int blocks = 0, warps = 0;
  std::string limiter;  // "registers", "shared memory", "threads", "blocks"
};
// Resident blocks and warps per SM for a kernel of `threads` threads, `registers` per thread and
// `shared_bytes` per block (1 KiB of each block's shared memory is reserved by the hardware).
Occupancy occupancy(const SmLimits& sm, int threads, int registers, std::int64_t shared_bytes);

}  // namespace anybit::backend_cuda
