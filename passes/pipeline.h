// The compilation pipeline: a program in, CUDA source out. pipeline.cpp holds the one ordered list of
// passes; ANYBIT_DUMP_DIR (or PipelineOptions::dump_dir) receives NN_<pass>.vm after every pass and the
// final <name>.cu.
#pragma once

#include <string>

#include "backend_cuda/emit.h"
#include "vm/program.h"

namespace anybit::passes {

struct PipelineOptions {
  backend_cuda::EmitOptions emit;
  std::string dump_dir;  // empty: $ANYBIT_DUMP_DIR if set, else no dumps
};

struct PipelineResult {
  vm::Program program;  // after every pass
  backend_cuda::EmittedKernel kernel;
};

PipelineResult run_pipeline(const vm::Program& program, const PipelineOptions& options = {});

// The directory dumps go to for these options ("" when dumping is off).
std::string dump_directory(const PipelineOptions& options);

}  // namespace anybit::passes
