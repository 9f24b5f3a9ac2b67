// Kernel skeleton, statements and scalar expressions of the CUDA emitter.
#include "backend_cuda/emitter.h"

#include <algorithm>

namespace anybit::backend_cuda {

namespace detail {

Emitter::Emitter(const vm::Program& p, const EmitOptions& options)
    : program_(p), options_(options), typing_(vm::verify(p)) {
  div_.known = options.divisibility;
}

void Emitter::unsupported(const Instruction& inst, const std::string& why) const {
  throw Error(fmt::format("{}: {}: the CUDA backend cannot lower this yet: {}", inst.location,
                          isa::info(inst.opcode).name, why));
}

std::string Emitter::scalar_name(const std::string& n) const {
  if (n == "blockIdx.x") return "block_x";
  if (n == "blockIdx.y") return "block_y";
  if (n == "blockIdx.z") return "block_z";
  return n + "_";
}

std::string Emitter::expr(const Expr& e) const {
  using isa::ExprOp;
  switch (e.op()) {
    case ExprOp::Const: return e.constant() < 0 ? fmt::format("({})", e.constant()) : std::to_string(e.constant());
    case ExprOp::Var: return scalar_name(e.name());
    case ExprOp::Neg: return fmt::format("(-{})", expr(e.lhs()));
    case ExprOp::Not: return fmt::format("(!{})", expr(e.lhs()));
    case ExprOp::Div: return fmt::format("ab::floordiv({}, {})", expr(e.lhs()), expr(e.rhs()));
    case ExprOp::Mod: return fmt::format("ab::floormod({}, {})", expr(e.lhs()), expr(e.rhs()));
    case ExprOp::CeilDiv: return fmt::format("ab::ceildiv({}, {})", expr(e.lhs()), expr(e.rhs()));
    case ExprOp::Min: return fmt::format("ab::min({}, {})", expr(e.lhs()), expr(e.rhs()));
    case ExprOp::Max: return fmt::format("ab::max({}, {})", expr(e.lhs()), expr(e.rhs()));
    default: break;
  }
  const char* op = "";
  switch (e.op()) {
    case ExprOp::Add: op = "+"; break;
    case ExprOp::Sub: op = "-"; break;
    case ExprOp::Mul: op = "*"; break;
    case ExprOp::Lt: op = "<"; break;
    case ExprOp::Le: op = "<="; break;
    case ExprOp::Gt: op = ">"; break;
    case ExprOp::Ge: op = ">="; break;
    case ExprOp::Eq: op = "=="; break;
    case ExprOp::Ne: op = "!="; break;
    case ExprOp::And: op = "&&"; break;
    case ExprOp::Or: op = "||"; break;
    default: ANYBIT_ASSERT(false, "unhandled expression op {}", static_cast<int>(e.op()));
  }
  return fmt::format("({} {} {})", expr(e.lhs()), op, expr(e.rhs()));
}

std::vector<std::string> Emitter::thread_base(const RegisterLayout& l, const std::string& tid) const {
  const auto& modes = l.modes();
  std::vector<std::int64_t> thread_stride(modes.size(), 0);
  std::int64_t stride = 1;
  for (auto it = l.spatial().rbegin(); it != l.spatial().rend(); ++it) {
    thread_stride[*it] = stride;
    stride *= modes[*it].size;
  }
  const std::int64_t threads = stride;
  std::vector<std::string> out;
  for (const auto& dim : l.dim_modes()) {
    std::vector<std::string> terms;
    std::int64_t weight = 1;
    for (auto it = dim.rbegin(); it != dim.rend(); ++it) {
      const int m = *it;
      if (std::find(l.spatial().begin(), l.spatial().end(), m) != l.spatial().end()) {
        std::string coord = thread_stride[m] == 1 ? tid : fmt::format("{} / {}", tid, thread_stride[m]);
        if (thread_stride[m] * modes[m].size != threads) coord = fmt::format("({}) % {}", coord, modes[m].size);
        terms.push_back(weight == 1 ? fmt::format("({})", coord) : fmt::format("({}) * {}", coord, weight));
      }
      weight *= modes[m].size;
    }
    out.push_back(terms.empty() ? "0" : fmt::format("(ab::i64)({})", fmt::join(terms, " + ")));
  }
  return out;
}

std::string Emitter::first_replica(const RegisterLayout& l) const {
  std::vector<std::string> terms;
  std::int64_t stride = 1;
  for (auto it = l.spatial().rbegin(); it != l.spatial().rend(); ++it) {
    const auto& m = l.modes()[*it];
    if (m.dim < 0) terms.push_back(fmt::format("(tid / {}) % {} == 0", stride, m.size));
    stride *= m.size;
  }
  return terms.empty() ? "" : fmt::format("{}", fmt::join(terms, " && "));
}

int Emitter::words(const TensorType& t) {
  return static_cast<int>((t.layout->local_size() * t.dtype.bits() + 31) / 32);
}

void Emitter::declare_tile(const std::string& vm_name, const TensorType& t) {
  line("ab::u32 {}[{}];  // {}", value(vm_name), words(t), t.to_string());
}

void Emitter::body(const vm::Body& b) {
  for (const vm::Statement& st : b) {
    if (const auto* inst = std::get_if<Instruction>(&st.node)) {
      instruction(*inst);
    } else if (const auto* let = std::get_if<vm::Let>(&st.node)) {
      line("const ab::i64 {} = {};", scalar_name(let->name), expr(let->value));
      div_.known[let->name] = div_.of(let->value);
    } else if (const auto* loop = std::get_if<vm::For>(&st.node)) {
      if (loop->unroll > 1) line("#pragma unroll {}", loop->unroll);
      const std::string v = scalar_name(loop->var);
      line("for (ab::i64 {} = {}; {} < {}; {} += {}) {{", v, expr(loop->begin), v, expr(loop->end), v,
           expr(loop->step));
      div_.known[loop->var] = std::min(div_.of(loop->begin), div_.of(loop->step));
      ++indent_;
      body(loop->body);
      --indent_;
      div_.known.erase(loop->var);
      line("}}");
    } else if (const auto* branch = std::get_if<vm::If>(&st.node)) {
      line("if ({}) {{", expr(branch->condition));
      ++indent_;
      body(branch->then_body);
      --indent_;
      if (!branch->else_body.empty()) {
        line("}} else {{");
        ++indent_;
        body(branch->else_body);
        --indent_;
      }
      line("}}");
    }
  }
}

void Emitter::instruction(const Instruction& inst) {
  line("// vm: {}", vm::print(inst));
  line("AB_AT({});", instructions_.size());
  instructions_.push_back(fmt::format("{}: {}", inst.location, isa::info(inst.opcode).name));
  const auto& ops = inst.operands;
  switch (inst.opcode) {
    case isa::Opcode::GlobalView: {
      const TensorType& t = type(inst.result);
      line("ab::u8* const {} = {};", value(inst.result), scalar_name(t.param));
      for (std::size_t d = 0; d < t.global_shape.size(); ++d) {
        line("const ab::i64 {}_extent{} = {};", value(inst.result), d, expr(t.global_shape[d]));
        line("const ab::i64 {}_stride{} = {};", value(inst.result), d, expr(t.global_strides[d]));
      }
      return;
    }
    case isa::Opcode::AllocShared:
      line("ab::u8* const {} = ab_smem + {};", value(inst.result), typing_.shared.offsets.at(inst.result));
      return;
    case isa::Opcode::AllocRegister: {
      const TensorType& t = *inst.type;
      declare_tile(inst.result, t);
      const std::uint32_t code = isa::encode(t.dtype, inst.attrs.init.value_or(0.0));
      // Every slot holds the same code: fill word by word with the repeated bit pattern.
      const int bits = t.dtype.bits();
      for (int w = 0; w < words(t); ++w) {
        std::uint32_t word = 0;
        for (int b = 0; b < 32; ++b) {
          const std::int64_t bit = static_cast<std::int64_t>(w) * 32 + b;
          if (bit < t.layout->local_size() * bits && ((code >> (bit % bits)) & 1u)) word |= 1u << b;
        }
        line("{}[{}] = 0x{:08x}u;", value(inst.result), w, word);
      }
      return;
    }
    case isa::Opcode::FreeShared: return;  // the shared-memory plan already reuses the space
    case isa::Opcode::LoadGlobal: load_global(inst); return;
    case isa::Opcode::StoreGlobal: store_global(inst); return;
    case isa::Opcode::LoadShared: load_shared(inst); return;
    case isa::Opcode::StoreShared: store_shared(inst); return;
    case isa::Opcode::CopyAsync: copy_async(inst); return;
    case isa::Opcode::CommitGroup: line("ab::cp_async_commit();"); return;
    case isa::Opcode::WaitGroup: line("ab::cp_async_wait<{}>();", *inst.attrs.n); return;
    case isa::Opcode::SyncThreads: line("ab::bar_sync();"); return;
    case isa::Opcode::Cast: cast(inst); return;
    case isa::Opcode::Neg:
    case isa::Opcode::Abs:
    case isa::Opcode::Add:
    case isa::Opcode::Sub:
    case isa::Opcode::Mul:
    case isa::Opcode::Div:
    case isa::Opcode::Min:
    case isa::Opcode::Max:
    case isa::Opcode::Fma:
    case isa::Opcode::Where: elementwise(inst); return;
    case isa::Opcode::Reduce: reduce(inst); return;
    case isa::Opcode::Dot: dot(inst); return;
    case isa::Opcode::View:
    case isa::Opcode::Reshape: {
      // The same bits per thread under a new type: a register copy the compiler folds away.
      const TensorType& t = type(inst.result);
      declare_tile(inst.result, t);
      line("for (int w = 0; w < {}; ++w) {}[w] = {}[w];", words(t), value(inst.result), value(ops[0].name));
      return;
    }
    case isa::Opcode::Assign:
      line("for (int w = 0; w < {}; ++w) {}[w] = {}[w];", words(type(ops[0].name)), value(ops[0].name),
           value(ops[1].name));
      return;
  }
  ANYBIT_ASSERT(false, "no lowering for {}", isa::info(inst.opcode).name);
}

EmittedKernel Emitter::run() {
  for (const auto& v : typing_.values)
    if (v.second.scope == isa::Scope::Register && !v.second.layout)
      throw Error(fmt::format("program '{}': %{} has no layout; the CUDA backend needs every register layout "
                              "concrete (layout inference is not implemented yet)",
                              program_.name, v.first));
  std::vector<std::string> params;
  for (const vm::Param& p : program_.params) {
    if (p.kind == vm::ParamKind::Pointer)
      params.push_back(fmt::format("ab::u8* __restrict__ {}", scalar_name(p.name)));
    else
      params.push_back(fmt::format("{} arg_{}", p.kind == vm::ParamKind::I32 ? "int" : "long long", p.name));
  }
  out_ += fmt::format("// Generated by anybit from program '{}': {} warps, {} bytes of shared memory.\n",
                      program_.name, program_.warps, typing_.shared.total_bytes);
  out_ += fmt::format("#include \"{}\"\n\n", kRuntimeHeaderName);
  out_ += fmt::format("extern \"C\" __global__ void __launch_bounds__({}) {}({}) {{\n", program_.threads(),
                      program_.name, fmt::join(params, ", "));
  indent_ = 1;
  line("AB_DECLARE_SHARED(ab_smem);");
  line("const ab::u32 tid = ab::thread_idx();");
  for (const vm::Param& p : program_.params)  // index arithmetic is 64-bit, like the VM's
    if (p.kind != vm::ParamKind::Pointer) line("const ab::i64 {} = arg_{};", scalar_name(p.name), p.name);
  for (const char* b : {"x", "y", "z"})
    line("const ab::i64 block_{} = ab::block_idx({});", b, b[0] - 'x');
  body(program_.body);
  out_ += "}\n";
  const std::int64_t shared = std::max(typing_.shared.total_bytes, scratch_bytes_);
  if (shared != typing_.shared.total_bytes) {  // the header comment states the real amount
    const auto eol = out_.find('\n');
    out_.replace(0, eol, fmt::format("// Generated by anybit from program '{}': {} warps, {} bytes of shared memory ({} of "
                                     "them reduction scratch).",
                                     program_.name, program_.warps, shared, shared - typing_.shared.total_bytes));
  }
  return EmittedKernel{program_.name, out_, static_cast<int>(program_.threads()), shared, fallbacks_, instructions_};
}

}  // namespace detail

EmittedKernel emit_cuda(const vm::Program& program, const EmitOptions& options) {
  return detail::Emitter(program, options).run();
}

}  // namespace anybit::backend_cuda
