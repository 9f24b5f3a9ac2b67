#include "backend_cuda/launch.h"

#include "backend_cuda/driver.h"
#include "backend_cuda/gpu.h"

namespace anybit::backend_cuda {

LaunchReport launch(const vm::Program& program, const EmittedKernel& kernel, const vm::Arguments& args, Target target,
                    const SimOptions& sim) {
  LaunchReport report;
  const DriverStatus& driver = driver_status();
  if (target == Target::Gpu || (target == Target::Best && driver.available)) {
    const GpuRun run = run_on_gpu(program, kernel, args);  // throws the probe's message without a GPU
    report.ran_on = Target::Gpu;
    report.note = run.device;
    report.gpu_milliseconds = run.milliseconds;
    return report;
  }
  if (target == Target::Best) report.note = "no GPU (" + driver.message + "); ran on the CPU simulator";
  report.ran_on = Target::Simulator;
  report.counters = SimKernel::build(program, kernel).launch(args, sim);
  return report;
}

}  // namespace anybit::backend_cuda
