// The verifier: every rule a program must satisfy before anything runs or compiles it, each with its own
// message ("LOCATION: INSTRUCTION: what is wrong; how to fix it").
//
// Rules: parameters and names (defined before use, defined once, scalars vs tensors); the instruction
// table's operand kinds, attributes and type rules (isa::check_instruction: dtypes, shapes, layouts,
// view's equal bits per thread, dot's mma-compatible layouts); register layouts cover exactly the block's
// threads; dot and assign update only alloc_register tiles; shared tiles are allocated at top level, freed
// once, unused after free, and fit the shared-memory limit (128-byte aligned, first-fit reuse of freed
// space); async copies are committed, waited for before the program ends, and a shared tile is not read at
// an offset a copy_async is filling until a wait_group and a sync_threads have passed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vm/program.h"

namespace anybit::vm {

struct VerifyOptions {
  // Dynamic shared memory available to one block (sm_80's 163 KiB by default).
  std::int64_t shared_limit_bytes = 166912;
};

struct SharedPlan {
  std::map<std::string, std::int64_t> offsets;  // byte offset of each shared tile
  std::int64_t total_bytes = 0;                 // peak use, what a launch must request
};

struct Typing {
  std::map<std::string, TensorType> values;  // the type of every tensor value
  SharedPlan shared;
};

// Throws anybit::Error listing every violation (one per line) when the program is invalid.
Typing verify(const Program& program, const VerifyOptions& options = {});
// The violations, without throwing; empty for a valid program.
std::vector<std::string> verify_errors(const Program& program, const VerifyOptions& options = {});

// Alignment of shared tiles, in bytes.
inline constexpr std::int64_t kSharedAlignment = 128;
// Bytes a shared tile occupies.
std::int64_t shared_bytes(const TensorType& type);

}  // namespace anybit::vm
