// One entry point for running an emitted kernel where the caller allows: on the GPU, on the CPU
// simulator, or the best available (the GPU when the driver reports one, else the simulator, saying so).
#pragma once

#include <string>

#include "backend_cuda/emit.h"
#include "backend_cuda/simulator.h"
#include "vm/interpreter.h"

namespace anybit::backend_cuda {

enum class Target { Gpu, Simulator, Best };

struct LaunchReport {
  Target ran_on = Target::Simulator;  // Gpu or Simulator
  std::string note;                   // why the simulator ran under Target::Best, or the GPU's name
  float gpu_milliseconds = 0;
  SimCounters counters;               // simulator runs
};

// anybit::Error from the chosen device; Target::Gpu without a GPU fails with the driver probe's message.
LaunchReport launch(const vm::Program& program, const EmittedKernel& kernel, const vm::Arguments& args, Target target,
                    const SimOptions& sim = {});

}  // namespace anybit::backend_cuda
