// Instruction counts of PTX text, by full opcode ("ld.global.v4.u32", "mma.sync.aligned.m16n8k16...").
#pragma once

#include <map>
#include <string>

namespace anybit::backend_cuda {

std::map<std::string, int> ptx_opcode_counts(const std::string& ptx);

}  // namespace anybit::backend_cuda
