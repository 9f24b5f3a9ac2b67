#include "passes/pipeline.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "isa/error.h"
#include "passes/infer_layouts.h"
#include "passes/simplify.h"
#include "vm/verifier.h"

namespace anybit::passes {

namespace {

void dump(const std::string& dir, const std::string& file, const std::string& text) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::ofstream f(std::filesystem::path(dir) / file, std::ios::trunc);
  if (!f) throw Error(fmt::format("cannot write the pipeline dump '{}/{}'", dir, file));
  f << text;
}

}  // namespace

std::string dump_directory(const PipelineOptions& options) {
  if (!options.dump_dir.empty()) return options.dump_dir;
  const char* env = std::getenv("ANYBIT_DUMP_DIR");
  return env ? env : "";
}

PipelineResult run_pipeline(const vm::Program& input, const PipelineOptions& options) {
  const std::string dir = dump_directory(options);
  PipelineResult r{input, {}};
  // 00: the input must verify before any pass may assume the verifier's guarantees.
  vm::verify(r.program);
  dump(dir, "00_input.vm", vm::print(r.program));
  // 01: layout inference first: every later decision (vector widths, ldmatrix, mma fragments) reads
  // concrete layouts. The pass verifies its own output.
  r.program = infer_layouts(r.program);
  dump(dir, "01_infer_layouts.vm", vm::print(r.program));
  // 02: simplification after inference (it only rewrites expressions and control flow, never layouts) and
  // before emission, whose vector-width and ldmatrix analyses read offsets as simplified expressions.
  r.program = simplify(r.program);
  dump(dir, "02_simplify.vm", vm::print(r.program));
  // Emission last: it reads the final program only.
  r.kernel = backend_cuda::emit_cuda(r.program, options.emit);
  dump(dir, r.kernel.name + ".cu", r.kernel.source);
  return r;
}

}  // namespace anybit::passes
