// SASS of compiled kernels through nvdisasm, when one is installed: $ANYBIT_NVDISASM, nvdisasm on PATH,
// the CUDA toolkit's bin/, or the project-local copy tools/setup.sh installs from the nvidia-cuda-nvdisasm
// wheel (.tools/nvidia/cu*/bin). Everything degrades to PTX-level counts when none is found.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace anybit::backend_cuda {

// Path of a usable nvdisasm, if any.
std::optional<std::string> find_disassembler();
// SASS text of a cubin (anybit::Error if the disassembler fails).
std::string disassemble(const std::vector<char>& cubin, const std::string& nvdisasm);
// Instruction counts by opcode with modifiers ("LDG.E.128", "HMMA.16816.F32"), predicates stripped.
std::map<std::string, int> sass_opcode_counts(const std::string& sass);

}  // namespace anybit::backend_cuda
