// vmc: the anybit command line. `vmc --help` lists the commands.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <charconv>
#include <functional>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "backend_cuda/cache.h"
#include "backend_cuda/nvrtc.h"
#include "backend_cuda/driver.h"
#include "backend_cuda/gpu.h"
#include "backend_cuda/launch.h"
#include "backend_cuda/ptx_stats.h"
#include "backend_cuda/simulator.h"
#include "backend_cuda/sass.h"
#include "isa/bitpack.h"
#include "passes/infer_layouts.h"
#include "passes/pipeline.h"
#include "isa/dtype.h"
#include "isa/error.h"
#include "layout/register_layout.h"
#include "programs/bench.h"
#include "programs/examples.h"
#include "programs/matmul_api.h"
#include "programs/quant_matmul.h"
#include "vm/host_buffers.h"
#include "vm/interpreter.h"
#include "vm/verifier.h"

namespace {

using namespace anybit;
using isa::DataType;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(fmt::format("cannot open '{}'", path));
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

vm::Program load(const std::string& path) { return vm::parse(read_file(path), path); }

std::string value_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (std::fabs(v) >= 1e7) return fmt::format("{:.4e}", v);
  return fmt::format("{}", v);
}

int cmd_types(const std::string& decode) {
  if (!decode.empty()) {
    const DataType t = isa::parse_dtype(decode);
    if (t.bits() > 16) throw Error(fmt::format("--decode lists every code; {} has 2^{} codes, at most 16 bits are listed", t.name(), t.bits()));
    const int digits = (t.bits() + 3) / 4;
    for (std::uint32_t c = 0; c < (1u << t.bits()); ++c)
      fmt::print("0x{:0{}x}  0b{:0{}b}  {}\n", c, digits, c, t.bits(), value_text(isa::decode(t, c)));
    return 0;
  }
  fmt::print("{:<10} {:>4} {:>12} {:>12}  {}\n", "type", "bits", "min", "max", "values / specials");
  for (DataType t : isa::all_dtypes()) {
    std::string values;
    if (t.bits() <= 4 && !t.is_bool()) {
      std::vector<double> v;
      for (std::uint32_t c = 0; c < (1u << t.bits()); ++c) v.push_back(isa::decode(t, c));
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
      std::vector<std::string> text;
      for (double x : v) text.push_back(value_text(x));
      values = fmt::format("{{{}}}", fmt::join(text, ", "));
    } else if (t.is_float()) {
      values = t.has_inf() ? "inf and NaN" : t.has_nan() ? "NaN, no inf" : "all finite";
    }
    fmt::print("{:<10} {:>4} {:>12} {:>12}  {}\n", t.name(), t.bits(), value_text(isa::lowest_finite(t)),
               value_text(isa::max_finite(t)), values);
  }
  return 0;
}

int cmd_layout(const std::string& text, bool table) {
  const auto l = layout::parse_layout(text);
  fmt::print("layout:      {}\nshape:       [{}]\nthreads:     {}\nlocal size:  {}\nreplication: {}\n", l.to_string(),
             fmt::join(l.shape(), ", "), l.num_threads(), l.local_size(), l.replication());
  if (!table) return 0;
  const auto shape = l.shape();
  if (shape.size() > 2) throw Error("--table draws rank-1 and rank-2 layouts; reshape the layout first");
  const std::int64_t rows = shape.size() == 2 ? shape[0] : 1, cols = shape.empty() ? 1 : shape.back();
  if (rows * cols > 65536) throw Error("--table draws layouts of at most 65536 elements");
  for (std::int64_t r = 0; r < rows; ++r) {
    std::vector<std::string> cells;
    for (std::int64_t c = 0; c < cols; ++c) {
      layout::Shape idx = shape.size() == 2 ? layout::Shape{r, c} : shape.empty() ? layout::Shape{} : layout::Shape{c};
      const auto p = l.map(idx);
      cells.push_back(fmt::format("t{}:{}", p.thread, p.local));
    }
    fmt::print("{}\n", fmt::join(cells, " "));
  }
  return 0;
}

std::size_t count_instructions(const vm::Body& body) {
  std::size_t n = 0;
  for (const auto& st : body) {
    if (std::holds_alternative<isa::Instruction>(st.node)) ++n;
    if (const auto* l = std::get_if<vm::For>(&st.node)) n += count_instructions(l->body);
    if (const auto* i = std::get_if<vm::If>(&st.node)) n += count_instructions(i->then_body) + count_instructions(i->else_body);
  }
  return n;
}

int cmd_check(const std::string& file) {
  const auto p = load(file);
  const auto typing = vm::verify(p);
  fmt::print("{}: ok: program {} ({} instructions, {} warps, {} bytes of shared memory)\n", file, p.name,
             count_instructions(p.body), p.warps, typing.shared.total_bytes);
  return 0;
}

int cmd_fmt(const std::string& file, bool in_place) {
  const auto p = load(file);
  vm::verify(p);
  const std::string text = vm::print(p);
  if (!in_place) {
    fmt::print("{}", text);
    return 0;
  }
  const std::string tmp = file + ".vmc-tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    if (!f) throw Error(fmt::format("cannot write '{}'", tmp));
  }
  std::filesystem::rename(tmp, file);
  return 0;
}

std::map<std::string, std::int64_t> parse_params(const vm::Program& p, const std::vector<std::string>& items) {
  std::map<std::string, std::int64_t> out;
  for (const auto& item : items) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) throw Error(fmt::format("--param '{}' must be NAME=VALUE", item));
    const std::string name = item.substr(0, eq), value = item.substr(eq + 1);
    const vm::Param* q = p.find_param(name);
    if (!q) throw Error(fmt::format("--param {}: program {} has no parameter '{}'", item, p.name, name));
    if (q->kind == vm::ParamKind::Pointer)
      throw Error(fmt::format("--param {}: '{}' is a pointer; buffers come from --random-inputs", item, name));
    std::int64_t v = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc() || ptr != value.data() + value.size())
      throw Error(fmt::format("--param {}: '{}' is not an integer", item, value));
    if (out.count(name)) throw Error(fmt::format("--param {} given twice", name));
    out[name] = v;
  }
  for (const auto& q : p.params)
    if (q.kind != vm::ParamKind::Pointer && !out.count(q.name))
      throw Error(fmt::format("program {} needs --param {}=VALUE", p.name, q.name));
  return out;
}

int cmd_interp(const std::string& file, const std::vector<std::string>& params, std::uint64_t seed,
               const std::string& dump, bool force) {
  const auto p = passes::infer_layouts(load(file));  // open register layouts get the compiler's choice
  const auto scalars = parse_params(p, params);
  auto buffers = vm::random_buffers(p, scalars, seed);
  vm::interpret(p, vm::as_arguments(buffers, scalars));
  for (const auto& [name, bytes] : buffers)
    fmt::print("{:<12} {:>10} bytes  fnv1a64 {:016x}\n", name, bytes.size(), vm::checksum(bytes));
  if (!dump.empty()) vm::dump_buffers(buffers, dump, force);
  return 0;
}

// --assume NAME%D: the integer parameter NAME is a multiple of D (a power of two).
std::map<std::string, std::int64_t> parse_assumptions(const vm::Program& p, const std::vector<std::string>& items) {
  std::map<std::string, std::int64_t> out;
  for (const auto& item : items) {
    const auto pct = item.find('%');
    const std::string name = item.substr(0, pct);
    std::int64_t d = 0;
    if (pct != std::string::npos) {
      const std::string v = item.substr(pct + 1);
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
      if (ec != std::errc() || ptr != v.data() + v.size()) d = 0;
    }
    if (pct == std::string::npos || d < 1 || (d & (d - 1)) != 0)
      throw Error(fmt::format("--assume '{}' must be NAME%D with D a power of two, e.g. K%64", item));
    const vm::Param* q = p.find_param(name);
    if (!q || q->kind == vm::ParamKind::Pointer)
      throw Error(fmt::format("--assume '{}': program {} has no integer parameter '{}'", item, p.name, name));
    out[name] = d;
  }
  return out;
}

bool g_use_cache = true;

backend_cuda::CompiledKernel compile_kernel(const backend_cuda::EmittedKernel& k, const std::string& arch) {
  if (!g_use_cache) return backend_cuda::compile(k, {arch});
  backend_cuda::KernelCache cache(backend_cuda::KernelCache::default_directory());
  return cache.get_or_compile(k, {arch});
}

passes::PipelineResult lower(const vm::Program& p, const std::vector<std::string>& assume) {
  passes::PipelineOptions options;
  options.emit.divisibility = parse_assumptions(p, assume);
  return passes::run_pipeline(p, options);
}

void write_output(const std::string& out, const std::string& text) {
  if (out.empty() || out == "-") {
    fmt::print("{}", text);
    return;
  }
  std::ofstream f(out, std::ios::binary | std::ios::trunc);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!f) throw Error(fmt::format("cannot write '{}'", out));
}

int cmd_compile(const std::string& file, const std::string& arch, const std::string& emit, const std::string& out,
                const std::vector<std::string>& assume) {
  const auto p = load(file);
  if (emit == "header") {
    write_output(out, backend_cuda::runtime_header());
    return 0;
  }
  const auto lowered = lower(p, assume);
  if (emit == "vm") {
    write_output(out, vm::print(lowered.program));
  } else if (emit == "cuda") {
    write_output(out, lowered.kernel.source);
  } else {
    const auto compiled = compile_kernel(lowered.kernel, arch);
    if (emit == "ptx") {
      write_output(out, compiled.ptx);
    } else {
      if (out.empty() || out == "-") throw Error("--emit cubin writes binary: give -o FILE");
      if (compiled.cubin.empty()) throw Error(fmt::format("--arch {} gives PTX only; use sm_XX for a cubin", arch));
      write_output(out, std::string(compiled.cubin.begin(), compiled.cubin.end()));
    }
  }
  return 0;
}

std::string sass_json(const backend_cuda::CompiledKernel& compiled) {
  const auto nvdisasm = backend_cuda::find_disassembler();
  if (!nvdisasm || compiled.cubin.empty()) return "null";
  std::vector<std::string> ops;
  for (const auto& [op, n] : backend_cuda::sass_opcode_counts(backend_cuda::disassemble(compiled.cubin, *nvdisasm)))
    ops.push_back(fmt::format("\"{}\": {}", op, n));
  return fmt::format("{{{}}}", fmt::join(ops, ", "));
}

int cmd_stats(const std::string& file, const std::string& arch, bool json, const std::vector<std::string>& assume) {
  const auto p = load(file);
  const auto lowered = lower(p, assume);
  const auto compiled = compile_kernel(lowered.kernel, arch);
  const auto counts = backend_cuda::ptx_opcode_counts(compiled.ptx);
  const auto& s = compiled.stats;
  if (json) {
    std::vector<std::string> ops, fallbacks;
    for (const auto& [op, n] : counts) ops.push_back(fmt::format("\"{}\": {}", op, n));
    for (const auto& f : lowered.kernel.fallbacks) {
      std::string e;
      for (char c : f) e += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
      fallbacks.push_back("\"" + e + "\"");
    }
    fmt::print("{{\"kernel\": \"{}\", \"arch\": \"{}\", \"threads\": {}, \"registers\": {}, \"spill_store_bytes\": {}, "
               "\"spill_load_bytes\": {}, \"stack_bytes\": {}, \"dynamic_shared_bytes\": {}, \"static_shared_bytes\": {}, "
               "\"ptx_instructions\": {{{}}}, \"fallbacks\": [{}], \"sass_instructions\": {}}}\n",
               lowered.kernel.name, arch, lowered.kernel.threads, s.registers, s.spill_store_bytes, s.spill_load_bytes,
               s.stack_bytes, lowered.kernel.shared_bytes, s.static_shared_bytes, fmt::join(ops, ", "),
               fmt::join(fallbacks, ", "), sass_json(compiled));
    return 0;
  }
  fmt::print("kernel {} for {} (NVRTC {}): {} threads per block\n", lowered.kernel.name, arch, backend_cuda::nvrtc_version(),
             lowered.kernel.threads);
  if (s.reported)
    fmt::print("registers {}, spill stores {} bytes, spill loads {} bytes, stack {} bytes\n", s.registers,
               s.spill_store_bytes, s.spill_load_bytes, s.stack_bytes);
  else
    fmt::print("registers: not reported (PTX-only architecture)\n");
  fmt::print("shared memory: {} bytes dynamic, {} bytes static\n", lowered.kernel.shared_bytes, s.static_shared_bytes);
  int total = 0;
  for (const auto& [op, n] : counts) total += n;
  fmt::print("PTX instructions: {}\n", total);
  for (const auto& [op, n] : counts) fmt::print("  {:>6}  {}\n", n, op);
  if (!lowered.kernel.fallbacks.empty()) {
    fmt::print("scalar fallbacks:\n");
    for (const auto& f : lowered.kernel.fallbacks) fmt::print("  {}\n", f);
  }
  if (const auto nvdisasm = backend_cuda::find_disassembler()) {
    const auto sass = backend_cuda::sass_opcode_counts(backend_cuda::disassemble(compiled.cubin, *nvdisasm));
    int n = 0;
    for (const auto& [op, c] : sass) n += c;
    fmt::print("SASS instructions: {} ({})\n", n, *nvdisasm);
    for (const auto& [op, c] : sass) fmt::print("  {:>6}  {}\n", c, op);
  } else {
    fmt::print("SASS: no nvdisasm found (tools/setup.sh installs one from the nvidia-cuda-nvdisasm wheel); counts above are PTX\n");
  }
  return 0;
}

bool uses_reordered_sums(const vm::Body& body) {
  for (const auto& st : body) {
    if (const auto* inst = std::get_if<isa::Instruction>(&st.node)) {
      if (inst->opcode == isa::Opcode::Dot) return true;
      if (inst->opcode == isa::Opcode::Reduce && *inst->attrs.op == "add") return true;
    }
    if (const auto* l = std::get_if<vm::For>(&st.node); l && uses_reordered_sums(l->body)) return true;
    if (const auto* i = std::get_if<vm::If>(&st.node); i && (uses_reordered_sums(i->then_body) || uses_reordered_sums(i->else_body)))
      return true;
  }
  return false;
}

// Compares every buffer element by element: equal codes (any NaN equals any NaN), or, where sums may be
// ordered differently (mma, reductions), floats within 1e-4 * (1 + |reference|).
bool compare_buffers(const vm::Program& p, const vm::HostBuffers& reference, const vm::HostBuffers& got) {
  const bool tolerant = uses_reordered_sums(p.body);
  bool ok = true;
  for (const auto& q : p.params) {
    if (q.kind != vm::ParamKind::Pointer) continue;
    const auto& a = reference.at(q.name);
    const auto& b = got.at(q.name);
    const int bits = q.dtype.bits();
    double worst = 0;
    std::size_t worst_at = 0, mismatches = 0;
    for (std::size_t i = 0; i < a.size() * 8 / bits; ++i) {
      const auto ca = isa::read_code(a, i, bits), cb = isa::read_code(b, i, bits);
      if (ca == cb || (isa::is_nan_code(q.dtype, ca) && isa::is_nan_code(q.dtype, cb))) continue;
      const double va = isa::decode(q.dtype, ca), vb = isa::decode(q.dtype, cb), diff = std::fabs(va - vb);
      const bool within = tolerant && q.dtype.is_float() && diff <= 1e-4 * (1 + std::fabs(va));
      if (!within) ++mismatches;
      if (!(diff <= worst)) worst = diff, worst_at = i;
    }
    fmt::print("{:<12} max |difference| {:<12.4g} at element {:<8} {}\n", q.name, worst, worst_at,
               mismatches ? fmt::format("FAIL ({} elements differ)", mismatches) : "PASS");
    ok = ok && mismatches == 0;
  }
  fmt::print("check against the interpreter ({}): {}\n", tolerant ? "floats within 1e-4 relative: sums reordered" : "bit-exact",
             ok ? "PASS" : "FAIL");
  return ok;
}

int cmd_run(const std::string& file, const std::vector<std::string>& params, std::uint64_t seed, const std::string& dump,
            bool force, bool gpu, const std::string& check, const std::vector<std::string>& assume) {
  const auto lowered = lower(load(file), assume);
  const vm::Program& p = lowered.program;
  const auto scalars = parse_params(p, params);
  auto buffers = vm::random_buffers(p, scalars, seed);
  const vm::HostBuffers inputs = buffers;
  if (gpu) {
    const auto run = backend_cuda::run_on_gpu(p, lowered.kernel, vm::as_arguments(buffers, scalars));
    fmt::print("ran on {} in {:.3f} ms (CUDA events)\n", run.device, run.milliseconds);
  } else {
    const auto sim = backend_cuda::SimKernel::build(p, lowered.kernel);
    const auto c = sim.launch(vm::as_arguments(buffers, scalars), {seed});
    fmt::print("simulated: global {} bytes read, {} written ({} sectors); shared {} read, {} written, {} wavefronts "
               "({} without bank conflicts); mma {}, ldmatrix {}, cp.async {}, barriers {}, shuffles {}; {} memory and {} "
               "arithmetic instructions of the runtime\n",
               c.global_read_bytes, c.global_write_bytes, c.global_sectors, c.shared_read_bytes, c.shared_write_bytes,
               c.shared_wavefronts, c.shared_ideal_wavefronts, c.mma, c.ldmatrix, c.cp_async, c.barriers, c.shuffles,
               c.memory_instructions, c.arithmetic_instructions);
  }
  for (const auto& [name, bytes] : buffers)
    fmt::print("{:<12} {:>10} bytes  fnv1a64 {:016x}\n", name, bytes.size(), vm::checksum(bytes));
  if (!dump.empty()) vm::dump_buffers(buffers, dump, force);
  if (check.empty()) return 0;
  vm::HostBuffers reference = inputs;
  vm::interpret(p, vm::as_arguments(reference, scalars));
  return compare_buffers(p, reference, buffers) ? 0 : 1;
}

struct MatmulCommand {
  std::string wtype = "int4", atype = "f16", zeros = "none", arch = "sm_80", emit, out, run, load, dump, schedule;
  bool bias = false, force = false, tune = false;
  int group = 128;
  std::int64_t M = 16, N = 256, K = 256;
  bool check = false;
  std::uint64_t seed = 1;
};

int cmd_matmul(const MatmulCommand& o) {
  programs::QuantFormat f{isa::parse_dtype(o.wtype), isa::parse_dtype(o.atype), o.group,
                          o.zeros == "int"     ? programs::ZeroMode::Integer
                          : o.zeros == "float" ? programs::ZeroMode::Float
                                               : programs::ZeroMode::None,
                          o.bias};
  programs::validate(f, o.M, o.N, o.K);
  if (o.tune) {
    const auto t = anybit::tune_matmul(f, o.M, o.N, o.K);
    for (const auto& [s, ms] : t.timings) fmt::print("  {:<14} {:.4f} ms\n", programs::describe(s), ms);
    fmt::print("tuned: {} (stored in {})\n", programs::describe(t.best),
               anybit::tuned_schedule_path(f, o.M, o.N, o.K, backend_cuda::driver_status().devices.front().arch()).string());
  }
  // The schedule: --schedule, else what the library chooses for the GPU a run uses, else for --arch.
  const Device device = o.run == "gpu" ? Device::gpu() : o.run == "sim" ? Device::sim() : Device::best();
  const bool on_gpu = (o.run == "gpu" || o.run == "auto") && backend_cuda::driver_status().available;
  const programs::Schedule schedule =
      programs::with_whole_tiles(!o.schedule.empty() ? anybit::parse_schedule(o.schedule)
                               : on_gpu            ? anybit::matmul_schedule(f, o.M, o.N, o.K, Device::gpu())
                                                   : programs::choose_schedule(f, o.M, o.N, o.K, {o.arch, 0}),
                               f, o.N, o.K);
  passes::PipelineOptions options;
  options.emit = programs::quant_matmul_emit_options(f, schedule, o.M, o.N, o.K);
  const auto lowered = passes::run_pipeline(programs::quant_matmul(f, schedule), options);
  fmt::print("kernel {}: schedule {} ({} warps, block tile {} x {}{}{})\n", lowered.kernel.name, programs::describe(schedule),
             schedule.warps, programs::block_rows(schedule), 16 * schedule.warps,
             schedule.weights_on_a ? ", weights as the mma A operand" : "",
             schedule.split_k > 1 ? fmt::format(", K in {} slices summed in f32 by splitk_reduce", schedule.split_k) : "");
  if (programs::splits_activations(f, schedule))
    fmt::print("activations split once per launch into bf16 A_hi + A_lo by split_activations (the weights decode to bf16)\n");
  if (!o.emit.empty()) {
    if (o.emit == "cuda") {
      write_output(o.out, lowered.kernel.source);
    } else {
      const auto c = compile_kernel(lowered.kernel, o.arch);
      if (o.emit == "ptx") write_output(o.out, c.ptx);
      else {
        if (o.out.empty()) throw Error("--emit cubin writes binary: give -o FILE");
        write_output(o.out, std::string(c.cubin.begin(), c.cubin.end()));
      }
    }
  }
  const auto c = compile_kernel(lowered.kernel, o.arch);
  fmt::print("{}: {} registers, {} bytes spilled, {} bytes of shared memory\n", o.arch, c.stats.registers,
             c.stats.spill_store_bytes + c.stats.spill_load_bytes, lowered.kernel.shared_bytes);
  if (programs::splits_activations(f, schedule)) {
    const auto r = compile_kernel(passes::run_pipeline(programs::split_activations(f), options).kernel, o.arch);
    fmt::print("{} (split_activations): {} registers, {} bytes spilled\n", o.arch, r.stats.registers,
               r.stats.spill_store_bytes + r.stats.spill_load_bytes);
  }
  if (schedule.split_k > 1) {
    const auto r = compile_kernel(passes::run_pipeline(programs::splitk_reduce(f, schedule.split_k), options).kernel, o.arch);
    fmt::print("{} (splitk_reduce): {} registers, {} bytes spilled\n", o.arch, r.stats.registers,
               r.stats.spill_store_bytes + r.stats.spill_load_bytes);
  }
  if (o.run.empty()) return 0;
  // The problem: from --load DIR (documented raw files), else seeded normal weights and activations.
  const int abits = f.activations.bits();
  const std::int64_t groups = o.K / f.group;
  const bool int_zeros = f.zeros == programs::ZeroMode::Integer;
  auto codes = [](const std::vector<std::uint32_t>& v, int bits) {
    std::vector<std::uint8_t> out(isa::packed_bytes(v.size(), bits), 0);
    for (std::size_t i = 0; i < v.size(); ++i) isa::write_code(out, i, bits, v[i]);
    return out;
  };
  auto unpack = [](const std::vector<std::uint8_t>& bytes, std::size_t count, int bits) {
    std::vector<std::uint32_t> out(count);
    for (std::size_t i = 0; i < count; ++i) out[i] = isa::read_code(bytes, i, bits);
    return out;
  };
  programs::Quantized q;
  std::vector<std::uint32_t> a, bias;
  if (!o.load.empty()) {
    auto file = [&](const std::string& name, std::size_t bytes) {
      const std::string path = (std::filesystem::path(o.load) / name).string();
      std::string text = read_file(path);
      if (text.size() != bytes)
        throw Error(fmt::format("--load: '{}' has {} bytes; M={} N={} K={} group={} need {}", path, text.size(), o.M, o.N, o.K,
                                f.group, bytes));
      return std::vector<std::uint8_t>(text.begin(), text.end());
    };
    a = unpack(file("A.bin", isa::packed_bytes(o.M * o.K, abits)), o.M * o.K, abits);
    q.codes = file("q.bin", static_cast<std::size_t>(o.N * o.K));
    for (auto c : q.codes)
      if (c > f.weights.code_mask()) throw Error(fmt::format("--load: q.bin holds code {}, beyond {} bits", c, f.weights.bits()));
    q.scales = unpack(file("scales.bin", isa::packed_bytes(groups * o.N, abits)), groups * o.N, abits);
    if (f.zeros != programs::ZeroMode::None) {
      const auto z = file("zeros.bin", int_zeros ? groups * o.N : isa::packed_bytes(groups * o.N, abits));
      q.zeros = int_zeros ? std::vector<std::uint32_t>(z.begin(), z.end()) : unpack(z, groups * o.N, abits);
    }
    if (f.bias) bias = unpack(file("bias.bin", isa::packed_bytes(o.N, abits)), o.N, abits);
  } else {
    std::mt19937_64 rng(o.seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<float> w(static_cast<std::size_t>(o.N * o.K));
    for (auto& x : w) x = static_cast<float>(normal(rng) * 0.05);
    q = programs::quantize(f, w, o.N, o.K);
    a.resize(static_cast<std::size_t>(o.M * o.K));
    for (auto& x : a) x = isa::encode(f.activations, normal(rng));
    if (f.bias) {
      bias.resize(static_cast<std::size_t>(o.N));
      for (auto& x : bias) x = isa::encode(f.activations, normal(rng));
    }
  }
  vm::HostBuffers buffers;
  buffers["A"] = codes(a, abits);
  buffers["Wp"] = programs::pack_weights(f, q.codes, o.N, o.K);
  buffers["S"] = codes(q.scales, abits);
  if (f.zeros != programs::ZeroMode::None) buffers["Z"] = codes(q.zeros, int_zeros ? f.weights.bits() : abits);
  if (f.bias) buffers["B"] = codes(bias, abits);
  buffers["C"].assign(isa::packed_bytes(static_cast<std::size_t>(o.M * o.N), abits), 0);
  anybit::MatmulProblem problem{f, o.M, o.N, o.K, buffers["A"].data(), buffers["Wp"].data(), buffers["S"].data(),
                                nullptr, buffers["C"].data(), nullptr};
  if (f.zeros != programs::ZeroMode::None) problem.zeros = buffers["Z"].data();
  if (f.bias) problem.bias = buffers["B"].data();
  anybit::MatmulOptions run_options;
  run_options.schedule = schedule;
  run_options.sim_seed = o.seed;
  const auto report = anybit::matmul(problem, device, run_options);
  if (report.ran_on_gpu) {
    fmt::print("ran on {} in {:.3f} ms (CUDA events)\n", report.note, report.gpu_milliseconds);
  } else {
    if (device.kind == Device::Kind::Best) fmt::print("{}\n", report.note);
    fmt::print("ran on the CPU simulator: {} mma, {} global bytes read, {} written\n", report.counters.mma,
               report.counters.global_read_bytes, report.counters.global_write_bytes);
  }
  if (!o.dump.empty()) {
    vm::HostBuffers files;
    files["A"] = buffers["A"];
    files["q"] = q.codes;
    files["scales"] = buffers["S"];
    if (f.zeros != programs::ZeroMode::None)
      files["zeros"] = int_zeros ? std::vector<std::uint8_t>(q.zeros.begin(), q.zeros.end()) : buffers["Z"];
    if (f.bias) files["bias"] = buffers["B"];
    files["C"] = buffers["C"];
    vm::dump_buffers(files, o.dump, o.force);
  }
  if (!o.check) return 0;
  const auto ref = programs::reference_quant_matmul(f, a, q, o.M, o.N, o.K, bias);
  double worst = 0, scale = 1e-30;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double got = isa::decode(f.activations, isa::read_code(buffers["C"], i, f.activations.bits()));
    worst = std::max(worst, std::fabs(got - ref[i]));
    scale = std::max(scale, std::fabs(ref[i]));
  }
  const double ulp = f.activations == DataType::f16() ? std::ldexp(1.0, -10) : std::ldexp(1.0, -7);
  const double tolerance = ulp * (2.0 + std::sqrt(static_cast<double>(o.K)) / 4.0);
  const bool ok = worst / scale <= tolerance;
  fmt::print("check against the double reference: max abs error {:.4g}, relative {:.4g} (tolerance {:.4g}): {}\n", worst,
             worst / scale, tolerance, ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

std::vector<std::int64_t> integer_list(const std::string& text, const char* what) {
  std::vector<std::int64_t> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    std::int64_t v = 0;
    const auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc() || p != item.data() + item.size() || v < 1)
      throw Error(fmt::format("{}: '{}' is not a positive integer", what, printable(item)));
    out.push_back(v);
    start = end + 1;
  }
  return out;
}

int cmd_bench(const std::string& formats, const std::string& Ms, const std::string& NKs, const std::string& arch,
              const std::string& atype, int group, bool gpu, bool strict, const std::string& out, bool force) {
  bench::Options o;
  o.formats = bench::parse_formats(formats, isa::parse_dtype(atype), group);
  o.Ms = integer_list(Ms, "--M");
  o.NKs.clear();
  std::size_t start = 0;
  while (start <= NKs.size()) {
    const auto end = std::min(NKs.find(',', start), NKs.size());
    const std::string item = NKs.substr(start, end - start);
    const auto x = item.find('x');
    if (x == std::string::npos) throw Error(fmt::format("--NK: '{}' is not of the form NxK", printable(item)));
    const auto n = integer_list(item.substr(0, x), "--NK"), k = integer_list(item.substr(x + 1), "--NK");
    o.NKs.emplace_back(n.at(0), k.at(0));
    start = end + 1;
  }
  o.arch = arch;
  programs::default_multiprocessors(arch);  // an unknown architecture fails before any work
  if (gpu && !backend_cuda::driver_status().available) throw Error("--gpu: " + backend_cuda::driver_status().message);
  o.gpu = gpu;
  const std::filesystem::path dir(out);
  for (const char* name : {"report.md", "report.json", "speedup.png"})
    if (!force && std::filesystem::exists(dir / name))
      throw Error(fmt::format("'{}' exists; use --force to replace it, or another --out", (dir / name).string()));
  const bool terminal = ::isatty(2);
  o.progress = [&](std::size_t done, std::size_t total, const std::string& what) {
    if (!terminal) return;
    const int width = 30, filled = total ? static_cast<int>(width * done / total) : width;
    fmt::print(stderr, "\r[{}{}] {}/{} {:<40}", std::string(filled, '#'), std::string(width - filled, '.'), done, total, what);
    if (done == total && what == "done") fmt::print(stderr, "\n");
  };
  if (!backend_cuda::find_disassembler())
    fmt::print("note: no nvdisasm (tools/setup.sh installs one from PyPI): main-loop figures are not available, copies are counted in PTX\n");
  const auto report = bench::run(o);
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "report.md") << bench::markdown(report);
  std::ofstream(dir / "report.json") << bench::json(report);
  bench::write_plot(report, (dir / "speedup.png").string());
  for (const auto& b : report.budgets) fmt::print("{} {}: {}\n", b.pass ? "PASS" : "FAIL", b.name, b.detail);
  fmt::print("wrote {}/report.md, report.json, speedup.png ({} rows; times are modeled{})\n", out, report.rows.size(),
             gpu ? " and measured" : "");
  return strict && !report.passed() ? 1 : 0;
}

// Largest |C - host product| of the tiled matmul example's buffers.
double tiled_matmul_error(vm::HostBuffers& b, int M, int N, int K) {
  const DataType f16 = DataType::f16(), f32 = DataType::f32();
  std::vector<float> a(static_cast<std::size_t>(M) * K), w(static_cast<std::size_t>(K) * N);
  for (int i = 0; i < M * K; ++i) a[i] = isa::decode_f32(f16, isa::read_code(b["A"], i, 16));
  for (int i = 0; i < K * N; ++i) w[i] = isa::decode_f32(f16, isa::read_code(b["B"], i, 16));
  const auto ref = programs::reference_matmul(a, w, M, N, K);
  double err = 0;
  for (int i = 0; i < M * N; ++i) err = std::max(err, std::fabs(ref[i] - isa::decode(f32, isa::read_code(b["C"], i, 32))));
  return err;
}

// 0 when every value of the dequant example equals the host decode (NaN matches NaN), else infinity.
double dequant_error(vm::HostBuffers& b, DataType code, int blocks) {
  const DataType f16 = DataType::f16();
  const auto codes = programs::reference_fragment_codes(b["q"], code.bits(), blocks);
  for (std::size_t i = 0; i < codes.size(); ++i) {
    const double want = isa::decode(f16, isa::encode(f16, isa::decode(code, codes[i])));
    const double got = isa::decode(f16, isa::read_code(b["out"], i, 16));
    if (!(want == got || (std::isnan(want) && std::isnan(got)))) return INFINITY;
  }
  return 0;
}

// The main job until the quantized matmul lands: the example programs on the interpreter, then compiled to
// CUDA and run on the GPU when there is one, else on the CPU simulator, against host references.
int cmd_demo(std::uint64_t seed) {
  bool all_ok = true;
  auto report = [&](const std::string& what, double max_error, double tolerance) {
    const bool ok = max_error <= tolerance;
    all_ok &= ok;
    fmt::print("{:<58} max |error| {:<10.3g} {}\n", what, max_error, ok ? "PASS" : "FAIL");
  };
  const bool gpu = backend_cuda::driver_status().available;
  using Runner = std::function<void(const vm::Program&, vm::HostBuffers&, const std::map<std::string, std::int64_t>&)>;
  const Runner interpreter = [](const vm::Program& p, vm::HostBuffers& b, const std::map<std::string, std::int64_t>& s) {
    vm::interpret(p, vm::as_arguments(b, s));
  };
  const Runner compiled = [&](const vm::Program& p, vm::HostBuffers& b, const std::map<std::string, std::int64_t>& s) {
    passes::PipelineOptions options;
    options.emit.divisibility = {{"K", 8}, {"N", 8}};  // true of the shapes below
    const auto lowered = passes::run_pipeline(p, options);
    backend_cuda::launch(lowered.program, lowered.kernel, vm::as_arguments(b, s), backend_cuda::Target::Best, {seed});
  };
  {
    const auto p = programs::vector_add();
    std::map<std::string, std::int64_t> scalars = {{"n", 1000}};
    auto buffers = vm::random_buffers(p, scalars, seed);
    interpreter(p, buffers, scalars);
    double err = 0;
    for (int i = 0; i < 1000; ++i) {
      const float a = isa::decode_f32(DataType::f32(), isa::read_code(buffers["a"], i, 32));
      const float b = isa::decode_f32(DataType::f32(), isa::read_code(buffers["b"], i, 32));
      err = std::max(err, std::fabs(double(a + b) - isa::decode(DataType::f32(), isa::read_code(buffers["c"], i, 32))));
    }
    report("vector_add n=1000 (interpreter)", err, 0.0);
  }
  std::vector<DataType> formats;
  for (DataType code : isa::all_dtypes())
    if (code.bits() <= 8 && !code.is_bool()) formats.push_back(code);
  const std::vector<DataType> compiled_formats = {DataType::signed_int(4), DataType::unsigned_int(3), isa::parse_dtype("f4e2m1"),
                                                  isa::parse_dtype("f6e3m2"), isa::parse_dtype("f8e4m3")};
  struct Stage {
    const Runner* runner;
    std::string where;
    const std::vector<DataType>* dequant_formats;
  };
  const std::vector<Stage> stages = {{&interpreter, "interpreter", &formats},
                                     {&compiled, gpu ? "CUDA on the GPU" : "CUDA on the simulator", &compiled_formats}};
  for (const auto& [runner, where, dequant_formats] : stages) {
    const auto p = programs::tiled_matmul();
    const int M = 45, N = 40, K = 72;
    std::map<std::string, std::int64_t> scalars = {{"M", M}, {"N", N}, {"K", K}};
    auto buffers = vm::random_buffers(p, scalars, seed);
    (*runner)(p, buffers, scalars);
    report(fmt::format("tiled_matmul f16 {}x{}x{} ({})", M, N, K, where), tiled_matmul_error(buffers, M, N, K), 1e-4 * std::sqrt(K));
    double worst = 0;
    for (DataType code : *dequant_formats) {
      const auto q = programs::dequant_fragment(code, DataType::f16());
      std::map<std::string, std::int64_t> s = {{"blocks", 3}};
      auto b = vm::random_buffers(q, s, seed);
      (*runner)(q, b, s);
      worst = std::max(worst, dequant_error(b, code, 3));
    }
    report(fmt::format("dequant, {} formats -> f16 ({})", dequant_formats->size(), where), worst, 0.0);
  }
  fmt::print("{}\n", all_ok ? "demo: PASS" : "demo: FAIL");
  return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vmc: the anybit VM compiler and tools"};
  app.set_version_flag("--version", [] {
    return fmt::format("vmc (anybit {}), NVRTC {}", ANYBIT_VERSION, backend_cuda::nvrtc_version());
  });
  app.require_subcommand(1);

  std::string decode;
  auto* types = app.add_subcommand("types", "the data-type table");
  types->add_option("--decode", decode, "list every code of one type with its value");

  std::string layout_text;
  bool table = false;
  auto* layout = app.add_subcommand("layout", "describe a register layout expression");
  layout->add_option("expr", layout_text, "e.g. \"column_local(2,2) * spatial(8,4) * local(1,2)\"")->required();
  layout->add_flag("--table", table, "draw t<thread>:<local> for every element");

  std::string file;
  auto* check = app.add_subcommand("check", "parse and verify a .vm file");
  check->add_option("file", file, ".vm file")->required()->check(CLI::ExistingFile);

  bool in_place = false;
  auto* fmt_cmd = app.add_subcommand("fmt", "print a .vm file in canonical form");
  fmt_cmd->add_option("file", file, ".vm file")->required()->check(CLI::ExistingFile);
  fmt_cmd->add_flag("-i,--in-place", in_place, "rewrite the file instead of printing");

  std::vector<std::string> params;
  std::uint64_t seed = 1;
  std::string dump;
  bool force = false;
  auto* interp = app.add_subcommand("interp", "run a .vm program on the interpreter with random inputs");
  interp->add_option("file", file, ".vm file")->required()->check(CLI::ExistingFile);
  interp->add_option("--param", params, "integer parameter NAME=VALUE (repeatable)");
  interp->add_option("--random-inputs", seed, "seed for the input buffers")->required();
  interp->add_option("--dump", dump, "write every buffer after the run to DIR/NAME.bin");
  interp->add_flag("--force", force, "let --dump replace existing files");

  std::string arch = "sm_80", emit = "cuda", out;
  std::vector<std::string> assume;
  auto* compile = app.add_subcommand("compile", "compile a .vm program to CUDA C++, PTX or cubin");
  compile->add_option("file", file, ".vm file")->required()->check(CLI::ExistingFile);
  compile->add_option("--arch", arch, "sm_XX (cubin and PTX) or compute_XX (PTX)");
  compile->add_option("--emit", emit, "what to write")->check(CLI::IsMember({"cuda", "ptx", "cubin", "vm", "header"}));
  compile->add_option("-o,--output", out, "output file (default stdout; required for cubin)");
  compile->add_option("--assume", assume, "NAME%D: integer parameter NAME is a multiple of D (repeatable)");

  bool no_cache = false;
  compile->add_flag("--no-cache", no_cache, "compile without the kernel cache ($ANYBIT_CACHE_DIR, ~/.cache/anybit)");
  bool json = false;
  auto* stats = app.add_subcommand("stats", "registers, spills, shared memory and instruction counts of a program");
  stats->add_option("file", file, ".vm file")->required()->check(CLI::ExistingFile);
  stats->add_option("--arch", arch, "sm_XX");
  stats->add_flag("--json", json, "machine-readable output");
  stats->add_option("--assume", assume, "NAME%D: integer parameter NAME is a multiple of D (repeatable)");
  stats->add_flag("--no-cache", no_cache, "compile without the kernel cache");

  bool on_sim = false, on_gpu = false;
  std::string check_with;
  auto* run = app.add_subcommand("run", "compile a .vm program and run it on the CPU simulator or the GPU");
  run->add_option("file", file, ".vm file")->required()->check(CLI::ExistingFile);
  auto* sim_flag = run->add_flag("--sim", on_sim, "run on the CPU simulator");
  auto* gpu_flag = run->add_flag("--gpu", on_gpu, "run on GPU 0 (fails with the reason when there is none)");
  sim_flag->excludes(gpu_flag);
  run->add_option("--param", params, "integer parameter NAME=VALUE (repeatable)");
  run->add_option("--random-inputs", seed, "seed for the input buffers (and the simulator's thread order)")->required();
  run->add_option("--dump", dump, "write every buffer after the run to DIR/NAME.bin");
  run->add_flag("--force", force, "let --dump replace existing files");
  run->add_option("--check", check_with, "compare every buffer with the interpreter's")->check(CLI::IsMember({"interp"}));
  run->add_option("--assume", assume, "NAME%D: integer parameter NAME is a multiple of D (repeatable)");

  MatmulCommand mm;
  auto* matmul = app.add_subcommand("matmul", "compile (and run) the quantized matmul for one configuration");
  matmul->add_option("--wtype", mm.wtype, "weight format: int1..int8, uint1..uint8, f{N}e{E}m{M}");
  matmul->add_option("--atype", mm.atype, "activations: f16 or bf16");
  matmul->add_option("--group", mm.group, "group size along K (a multiple of 16 dividing K; K for per-channel)");
  matmul->add_option("--zeros", mm.zeros, "zero points")->check(CLI::IsMember({"none", "int", "float"}));
  matmul->add_option("--M", mm.M, "rows of A and C");
  matmul->add_option("--N", mm.N, "columns of C (rows of W), a multiple of 16");
  matmul->add_option("--K", mm.K, "inner dimension, a multiple of 16");
  matmul->add_option("--arch", mm.arch, "sm_XX");
  matmul->add_option("--emit", mm.emit, "also write the kernel")->check(CLI::IsMember({"cuda", "ptx", "cubin"}));
  matmul->add_option("-o,--output", mm.out, "output file for --emit (default stdout)");
  matmul->add_option("--run", mm.run, "run with seeded random data: sim, gpu, or auto (the GPU if present, else sim)")
      ->check(CLI::IsMember({"sim", "gpu", "auto"}));
  matmul->add_flag("--check", mm.check, "compare with a double-precision host reference");
  matmul->add_option("--seed", mm.seed, "data seed");
  matmul->add_flag("--bias", mm.bias, "add a bias vector of N values");
  matmul->add_option("--load", mm.load, "read A.bin, q.bin, scales.bin, [zeros.bin], [bias.bin] from DIR instead of the seed");
  matmul->add_option("--dump", mm.dump, "write the inputs and C.bin to DIR (same formats as --load)");
  matmul->add_flag("--force", mm.force, "let --dump replace existing files");
  matmul->add_option("--schedule", mm.schedule, "override the chosen schedule, e.g. 'w4 m1 s3 k2' (warps, M tiles, stages, split-K)");
  matmul->add_flag("--tune", mm.tune, "GPU only: time the candidate schedules and store the fastest for this problem");

  struct BenchCommand {
    std::string formats = "all", Ms = "1,16,64,128", NKs = "4096x4096,8192x8192,8192x28672", arch = "sm_80", out = "bench",
                atype = "f16";
    int group = 128;
    bool gpu = false, strict = false, force = false;
  } bc;
  auto* bench_cmd = app.add_subcommand("bench", "performance report: SASS main loop, traffic, roofline model (and GPU timing)");
  bench_cmd->add_option("--formats", bc.formats, "all, or a comma-separated list of weight formats");
  bench_cmd->add_option("--M", bc.Ms, "comma-separated batch sizes");
  bench_cmd->add_option("--NK", bc.NKs, "comma-separated NxK shapes");
  bench_cmd->add_option("--arch", bc.arch, "architecture the kernels are compiled and analysed for");
  bench_cmd->add_option("--atype", bc.atype, "activations: f16 or bf16");
  bench_cmd->add_option("--group", bc.group, "group size");
  bench_cmd->add_flag("--gpu", bc.gpu, "also time the kernels on the GPU (CUDA events)");
  bench_cmd->add_flag("--strict", bc.strict, "exit non-zero when a budget fails");
  bench_cmd->add_option("--out", bc.out, "directory for report.md, report.json and speedup.png");
  bench_cmd->add_flag("--force", bc.force, "replace an existing report in --out");

  auto* demo = app.add_subcommand("demo", "run the example programs on the interpreter against host references");
  demo->add_option("--seed", seed, "input seed");

  CLI11_PARSE(app, argc, argv);
  g_use_cache = !no_cache;
  try {
    if (*types) return cmd_types(decode);
    if (*layout) return cmd_layout(layout_text, table);
    if (*check) return cmd_check(file);
    if (*fmt_cmd) return cmd_fmt(file, in_place);
    if (*interp) return cmd_interp(file, params, seed, dump, force);
    if (*demo) return cmd_demo(seed);
    if (*run) {
      if (!on_sim && !on_gpu) throw Error("vmc run needs --sim or --gpu");
      return cmd_run(file, params, seed, dump, force, on_gpu, check_with, assume);
    }
    if (*compile) return cmd_compile(file, arch, emit, out, assume);
    if (*matmul) {
      g_use_cache = true;
      return cmd_matmul(mm);
    }
    if (*stats) return cmd_stats(file, arch, json, assume);
    if (*bench_cmd) {
      g_use_cache = true;
      return cmd_bench(bc.formats, bc.Ms, bc.NKs, bc.arch, bc.atype, bc.group, bc.gpu, bc.strict, bc.out, bc.force);
    }
  } catch (const anybit::Error& e) {
    fmt::print(stderr, "vmc: error: {}\n", e.what());
    return 1;
  } catch (const anybit::InternalError& e) {
    fmt::print(stderr, "vmc: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "vmc: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
