// The simulator runtime as a shared library (libanybit_sim.so): built once with the project, linked by
// every simulated kernel's shared object, which then only compiles the kernel itself.
#include "anybit_sim.h"

extern "C" __attribute__((visibility("default"))) const char* ab_sim_run(const ab::sim::LaunchSpec* spec) {
  static thread_local std::string error;
  error = ab::sim::run(*spec);
  return error.empty() ? nullptr : error.c_str();
}
