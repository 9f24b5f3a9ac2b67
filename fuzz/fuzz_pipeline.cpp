// libFuzzer: parse -> verify -> the compiler pipeline (layout inference, simplification, CUDA emission; no
// NVRTC) on mutated programs. Every input ends in a program's CUDA source or an anybit::Error; an
// internal error (ANYBIT_ASSERT) or a sanitizer report is a bug.
#include <cstdint>
#include <string_view>

#include "isa/error.h"
#include "passes/pipeline.h"
#include "vm/program.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto result = anybit::passes::run_pipeline(anybit::vm::parse(text, "fuzz.vm"));
    ANYBIT_ASSERT(!result.kernel.source.empty(), "the pipeline accepted a program but emitted nothing");
  } catch (const anybit::Error&) {
  }
  return 0;
}
