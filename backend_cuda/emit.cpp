// Kernel skeleton, statements and scalar expressions of the CUDA emitter.
#include "backend_cuda/emitter.h"

#include <algorithm>
#include <functional>

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

isa::Interval Emitter::range(const Expr& e) const {
  return isa::range_of(e, [&](const std::string& n) -> std::optional<isa::Interval> {
    const auto it = ranges_.find(n);
    if (it == ranges_.end()) return std::nullopt;
    return it->second;
  });
}

std::string Emitter::scalar_type(const std::string& vm_name, const isa::Interval& r) {
  ranges_[vm_name] = r;
  if (r.fits_i32()) {
    scalars32_.insert(vm_name);
    return "int";
  }
  scalars32_.erase(vm_name);
  return "ab::i64";
}

std::string Emitter::expr(const Expr& e) const { return typed_expr(e).text; }

// Every node is computed in 32 bits when its value and its operands fit (the range analysis bounds them);
// otherwise in 64 bits, and a 64-bit result whose range fits is narrowed back, so one wide step does not
// widen the whole expression. Floor division and modulo by a positive constant of a non-negative value
// become unsigned C operations (shifts and masks for powers of two).
Emitter::CExpr Emitter::typed_expr(const Expr& e) const {
  using isa::ExprOp;
  const bool fits = range(e).fits_i32();
  const auto wide = [](const CExpr& c) { return c.is32 ? "(ab::i64)" + c.text : c.text; };
  const auto narrow = [&](const std::string& t64) { return fits ? CExpr{"(int)" + t64, true} : CExpr{t64, false}; };
  switch (e.op()) {
    case ExprOp::Const: {
      const std::int64_t v = e.constant();
      const std::string t = v < 0 ? fmt::format("({})", v) : std::to_string(v);
      return fits ? CExpr{t, true} : CExpr{fmt::format("(ab::i64){}", t), false};
    }
    case ExprOp::Var: return {scalar_name(e.name()), scalars32_.count(e.name()) > 0};
    case ExprOp::Neg: {
      const CExpr a = typed_expr(e.lhs());
      if (fits && a.is32) return {fmt::format("(-{})", a.text), true};
      return narrow(fmt::format("(-{})", wide(a)));
    }
    case ExprOp::Not: return {fmt::format("(!{})", expr(e.lhs())), true};
    default: break;
  }
  const CExpr a = typed_expr(e.lhs()), b = typed_expr(e.rhs());
  const bool in32 = fits && a.is32 && b.is32;
  const bool unsigned_division = e.rhs().is_constant() && e.rhs().constant() > 0 && range(e.lhs()).non_negative();
  switch (e.op()) {
    case ExprOp::Div:
    case ExprOp::Mod: {
      const char* op = e.op() == ExprOp::Div ? "/" : "%";
      if (unsigned_division) {
        if (in32) return {fmt::format("(int)((ab::u32){} {} {}u)", a.text, op, b.text), true};
        return narrow(fmt::format("(ab::i64)((ab::u64){} {} {}ull)", wide(a), op, e.rhs().constant()));
      }
      const char* f = e.op() == ExprOp::Div ? "floordiv" : "floormod";
      if (in32) return {fmt::format("ab::{}32({}, {})", f, a.text, b.text), true};
      return narrow(fmt::format("ab::{}({}, {})", f, a.text, b.text));
    }
    case ExprOp::CeilDiv:
      if (unsigned_division) {
        const std::int64_t c = e.rhs().constant();
        if (in32) return {fmt::format("(int)(((ab::u32){} + {}u) / {}u)", a.text, c - 1, c), true};
        return narrow(fmt::format("(ab::i64)(((ab::u64){} + {}ull) / {}ull)", wide(a), c - 1, c));
      }
      if (in32) return {fmt::format("ab::ceildiv32({}, {})", a.text, b.text), true};
      return narrow(fmt::format("ab::ceildiv({}, {})", a.text, b.text));
    case ExprOp::Min:
    case ExprOp::Max: {
      const char* f = e.op() == ExprOp::Min ? "min" : "max";
      if (a.is32 && b.is32) return {fmt::format("ab::{}32({}, {})", f, a.text, b.text), true};
      return narrow(fmt::format("ab::{}({}, {})", f, a.text, b.text));
    }
    default: break;
  }
  const char* op = "";
  bool arithmetic = false;
  switch (e.op()) {
    case ExprOp::Add: op = "+"; arithmetic = true; break;
    case ExprOp::Sub: op = "-"; arithmetic = true; break;
    case ExprOp::Mul: op = "*"; arithmetic = true; break;
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
  if (!arithmetic) return {fmt::format("({} {} {})", a.text, op, b.text), true};  // C promotes mixed widths exactly
  if (in32) return {fmt::format("({} {} {})", a.text, op, b.text), true};
  return narrow(fmt::format("({} {} {})", wide(a), op, wide(b)));
}

void Emitter::find_offset_casts() {
  std::map<std::string, int> uses;
  std::map<std::string, const Instruction*> defs;
  std::vector<const Instruction*> dots;
  const std::function<void(const vm::Body&)> walk = [&](const vm::Body& b) {
    for (const vm::Statement& st : b) {
      if (const auto* inst = std::get_if<Instruction>(&st.node)) {
        for (const auto& o : inst->operands) ++uses[o.name];
        if (!inst->result.empty()) defs[inst->result] = inst;
        if (inst->opcode == isa::Opcode::Dot) dots.push_back(inst);
      } else if (const auto* loop = std::get_if<vm::For>(&st.node)) {
        walk(loop->body);
      } else if (const auto* branch = std::get_if<vm::If>(&st.node)) {
        walk(branch->then_body);
        walk(branch->else_body);
      }
    }
  };
  walk(program_.body);
  for (const Instruction* d : dots) {
    if (type(d->operands[0].name).dtype != DataType::f32()) continue;
    for (std::size_t i = 1; i <= 2; ++i) {  // at most one operand of a dot: the other must be exact
      std::string name = d->operands[i].name;
      const Instruction* def = nullptr;
      for (;;) {
        auto it = defs.find(name);
        if (it == defs.end() || uses[name] != 1) break;
        def = it->second;
        if (def->opcode != isa::Opcode::View && def->opcode != isa::Opcode::Reshape) break;
        name = def->operands[0].name;
      }
      if (!def || def->opcode != isa::Opcode::Cast || def->result != name || def->attrs.exp) continue;
      const DataType from = type(def->operands[0].name).dtype, to = type(name).dtype;
      if (!from.is_integer() || !(to == DataType::f16() || to == DataType::bf16())) continue;
      // The casts that reach the magic-number decodes (vector_cast): pairs of slots, and not 8-bit codes
      // into bf16 (those go through f32).
      if (type(name).layout->local_size() % 2 != 0 || from.bits() > 8 || (from.bits() == 8 && to == DataType::bf16())) continue;
      offset_casts_.insert(name);
      const std::string& acc = d->operands[0].name;
      std::vector<std::int64_t> pairs;
      if (i == 2) pairs = correction_pairs(dot_plan(*d));
      if (!shadowed_.insert(acc).second && shadow_pairs_[acc] != pairs) pairs.clear();  // dots that disagree: none
      if (std::none_of(pairs.begin(), pairs.end(), [](std::int64_t p) { return p >= 0; })) pairs.clear();
      shadow_pairs_[acc] = pairs;
      break;
    }
  }
}

std::string Emitter::constant_fragment(const std::vector<std::uint32_t>& words) {
  return fragments_.try_emplace(words, fmt::format("kf{}", fragments_.size())).first->second;
}

std::string Emitter::constant_register(std::uint32_t value) {
  constants_.insert(value);
  return fmt::format("kc_{:08x}", value);
}

bool Emitter::narrow_indices(const std::string& view, const std::vector<Expr>& offset, const Shape& shape) const {
  if (!narrow_views_.count(view)) return false;
  for (std::size_t d = 0; d < offset.size(); ++d) {
    const isa::Interval r = range(offset[d]);
    // An index reaches offset + the tile's extent (masked accesses compare it before using it).
    if (!r.fits_i32() || r.hi > INT32_MAX - (d < shape.size() ? shape[d] : 0)) return false;
  }
  return true;
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
  if (shadowed_.count(vm_name)) line("ab::u32 {}_o[{}] = {{}};  // offset corrections (find_offset_casts)", value(vm_name), words(t));
}

void Emitter::flush_shadows(const Instruction& inst) {
  std::set<std::string> done;
  for (std::size_t i = 0; i < inst.operands.size(); ++i) {
    const std::string& name = inst.operands[i].name;
    if (!shadowed_.count(name) || (inst.opcode == isa::Opcode::Dot && i == 0) || !done.insert(name).second) continue;
    const std::string v = value(name);
    const auto& pairs = shadow_pairs_[name];
    if (pairs.empty()) {
      line("for (int w = 0; w < {}; ++w) {{ {}[w] = ab::as_u32(ab::as_float({}[w]) + ab::as_float({}_o[w])); {}_o[w] = 0u; }}",
           words(type(name)), v, v, v, v);
      continue;
    }
    // Paired tiles (correction_pairs): C fragment slots (row g, cols 2t, 2t+1), (row g + 8, the same); the
    // first tile of a pair takes its shadow's even-column slots, the second the first tile's odd ones.
    for (std::int64_t w = 0; w < words(type(name)); ++w) {
      const std::int64_t lc = w / 4, slot = w % 4, partner = lc < static_cast<std::int64_t>(pairs.size()) ? pairs[lc] : -1;
      const std::int64_t from = partner < 0 ? w : partner > lc ? lc * 4 + (slot & 2) : partner * 4 + (slot & 2) + 1;
      line("{}[{}] = ab::as_u32(ab::as_float({}[{}]) + ab::as_float({}_o[{}]));", v, w, v, w, v, from);
    }
    line("for (int w = 0; w < {}; ++w) {}_o[w] = 0u;", words(type(name)), v);
  }
}

std::string Emitter::lane_fragment(const std::vector<std::uint32_t>& even, const std::vector<std::uint32_t>& odd) {
  return lane_fragments_.try_emplace({even, odd}, fmt::format("kp{}", lane_fragments_.size())).first->second;
}

// Parameters that some global view uses bare as a dimension.
static void view_dimensions(const vm::Body& b, std::set<std::string>& out) {
  for (const vm::Statement& st : b) {
    if (const auto* inst = std::get_if<Instruction>(&st.node)) {
      if (inst->opcode == isa::Opcode::GlobalView && inst->attrs.shape)
        for (const Expr& d : *inst->attrs.shape)
          if (d.op() == isa::ExprOp::Var) out.insert(d.name());
    } else if (const auto* loop = std::get_if<vm::For>(&st.node)) {
      view_dimensions(loop->body, out);
    } else if (const auto* branch = std::get_if<vm::If>(&st.node)) {
      view_dimensions(branch->then_body, out);
      view_dimensions(branch->else_body, out);
    }
  }
}

void Emitter::body(const vm::Body& b) {
  for (const vm::Statement& st : b) {
    if (const auto* inst = std::get_if<Instruction>(&st.node)) {
      instruction(*inst);
    } else if (const auto* let = std::get_if<vm::Let>(&st.node)) {
      const std::string value = expr(let->value);
      line("const {} {} = {};", scalar_type(let->name, range(let->value)), scalar_name(let->name), value);
      div_.known[let->name] = div_.of(let->value);
    } else if (const auto* loop = std::get_if<vm::For>(&st.node)) {
      if (loop->unroll > 1) line("#pragma unroll {}", loop->unroll);
      const std::string v = scalar_name(loop->var);
      // The variable runs over [begin, end) and may reach end - 1 + step before the test fails.
      const isa::Interval first = range(loop->begin), bound = range(loop->end), step = range(loop->step);
      isa::Interval var = isa::Interval::full();
      if (step.lo > 0 && bound.hi > INT64_MIN && step.hi < INT32_MAX)
        var = {first.lo, std::max(first.lo, static_cast<std::int64_t>(std::min<__int128>(
                                                 INT64_MAX, static_cast<__int128>(bound.hi) - 1 + step.hi)))};
      const std::string begin = expr(loop->begin), end = expr(loop->end), by = expr(loop->step);
      const std::string type = scalar_type(loop->var, var);
      if (var.fits_i32()) ranges_[loop->var] = {var.lo, std::max(first.lo, bound.hi - 1)};
      line("for ({} {} = {}; {} < {}; {} += {}) {{", type, v, begin, v, end, v, by);
      div_.known[loop->var] = std::min(div_.of(loop->begin), div_.of(loop->step));
      ++indent_;
      body(loop->body);
      --indent_;
      div_.known.erase(loop->var);
      ranges_.erase(loop->var);
      scalars32_.erase(loop->var);
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
  flush_shadows(inst);
  switch (inst.opcode) {
    case isa::Opcode::GlobalView: {
      const TensorType& t = type(inst.result);
      line("ab::u8* const {} = {};", value(inst.result), scalar_name(t.param));
      // 32-bit addressing when the largest offset of any element, in the unit accesses multiply by (bytes,
      // or bits below a byte), fits: extents and strides non-negative and bounded by the range analysis.
      const int bits = t.dtype.bits(), unit = bits % 8 == 0 ? bits / 8 : bits;
      __int128 largest = 0;
      bool narrow = true;
      for (std::size_t d = 0; d < t.global_shape.size() && narrow; ++d) {
        const isa::Interval extent = range(t.global_shape[d]), stride = range(t.global_strides[d]);
        narrow = extent.fits_i32() && stride.fits_i32() && extent.non_negative() && stride.non_negative();
        if (narrow) largest += static_cast<__int128>(std::max<std::int64_t>(extent.hi - 1, 0)) * stride.hi * unit;
      }
      narrow = narrow && largest <= INT32_MAX;
      if (narrow) narrow_views_.insert(inst.result);
      else narrow_views_.erase(inst.result);
      const char* type = narrow ? "int" : "ab::i64";
      for (std::size_t d = 0; d < t.global_shape.size(); ++d) {
        line("const {} {}_extent{} = {};", type, value(inst.result), d, expr(t.global_shape[d]));
        line("const {} {}_stride{} = {};", type, value(inst.result), d, expr(t.global_strides[d]));
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
      if (auto it = offsets_.find(ops[0].name); it != offsets_.end()) offsets_[inst.result] = it->second;
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
  // The register cap is the block's whole share of the register file (65536 / threads, at most 255). With
  // an explicit cap ptxas keeps loop-invariant values (ldmatrix lane addresses, decode constants) in
  // registers; under __launch_bounds__ alone it kept kernels near 64 registers by recomputing them in every
  // iteration (int4 M=16 main loop: 116 issue slots per 1024 weights against 86).
  const std::int64_t max_registers = std::min<std::int64_t>(255, 65536 / program_.threads());
  out_ += fmt::format("extern \"C\" __global__ void __maxnreg__({}) {}({}) {{\n", max_registers, program_.name,
                      fmt::join(params, ", "));
  indent_ = 1;
  line("AB_DECLARE_SHARED(ab_smem);");
  line("const ab::u32 tid = ab::thread_idx();");
  constants_at_ = out_.size();  // constant_register declarations go here once the body has named them
  // Scalar parameters keep their declared width. One used bare as a view dimension is non-negative in
  // every run the VM accepts (the interpreter and the host launchers reject negative dimensions); the kernel
  // returns at once otherwise, so index arithmetic may rely on it.
  std::set<std::string> dimensions;
  view_dimensions(program_.body, dimensions);
  std::map<std::string, std::int64_t> bounds, divisible;  // the options' bounds and facts that name a parameter
  std::vector<std::string> negative;
  for (const vm::Param& p : program_.params) {
    if (p.kind == vm::ParamKind::Pointer) continue;
    isa::Interval r = p.kind == vm::ParamKind::I32 ? isa::Interval{INT32_MIN, INT32_MAX} : isa::Interval::full();
    if (dimensions.count(p.name)) {
      r.lo = 0;
      negative.push_back(fmt::format("{} < 0", scalar_name(p.name)));
    }
    if (auto b = options_.bounds.find(p.name); b != options_.bounds.end()) {
      r.hi = std::min(r.hi, b->second);
      bounds.emplace(p.name, b->second);
    }
    if (auto d = options_.divisibility.find(p.name); d != options_.divisibility.end() && d->second > 1)
      divisible.emplace(p.name, d->second);
    ranges_[p.name] = r;
    if (p.kind == vm::ParamKind::I32) scalars32_.insert(p.name);
    line("const {} {} = arg_{};", p.kind == vm::ParamKind::I32 ? "int" : "ab::i64", scalar_name(p.name), p.name);
  }
  if (!negative.empty()) line("if ({}) return;  // a negative view dimension", fmt::join(negative, " || "));
  if (!bounds.empty()) {
    std::vector<std::string> terms;
    for (const auto& [name, bound] : bounds) terms.push_back(fmt::format("{} <= {}", name, bound));
    line("// index arithmetic assumes {} (every launch checks)", fmt::join(terms, ", "));
  }
  if (!divisible.empty()) {
    std::vector<std::string> terms;
    for (const auto& [name, d] : divisible) terms.push_back(fmt::format("{} % {} == 0", name, d));
    line("// accesses assume {} (every launch checks)", fmt::join(terms, ", "));
  }
  // Grid limits: x < 2^31, y and z < 2^16, and below the grid's own size where the ranges bound it
  // (launches size the grid from the same expressions).
  const std::int64_t limit[3] = {INT32_MAX, 65535, 65535};
  for (int d = 0; d < 3; ++d) {
    const std::string name = fmt::format("blockIdx.{}", "xyz"[d]);
    std::int64_t hi = 0;
    if (d < static_cast<int>(program_.grid.size()))
      hi = std::clamp<std::int64_t>(range(program_.grid[d]).hi - 1, 0, limit[d]);
    ranges_[name] = {0, hi};
    scalars32_.insert(name);
    line("const int block_{} = ab::block_idx({});", "xyz"[d], d);
  }
  find_offset_casts();
  body(program_.body);
  out_ += "}\n";
  if (!constants_.empty() || !fragments_.empty() || !lane_fragments_.empty()) {  // declared after the fact, at the top: the body is emitted by now
    std::string decl = "  const ab::u32 kc_zero = ab::opaque_zero();  // keeps the constants below in registers\n";
    for (std::uint32_t v : constants_) decl += fmt::format("  const ab::u32 kc_{:08x} = 0x{:08x}u ^ kc_zero;\n", v, v);
    // Each fragment word a distinct expression (the same value shifted by a different zero), so that ptxas
    // keeps one register per word rather than one per value and copies into place before every mma.
    std::map<std::uint32_t, int> seen;
    for (const auto& [words, name] : fragments_) {
      std::vector<std::string> parts;
      for (std::uint32_t v : words) parts.push_back(fmt::format("0x{:08x}u ^ (kc_zero << {})", v, seen[v]++ % 32));
      decl += fmt::format("  const ab::u32 {}[{}] = {{{}}};\n", name, words.size(), fmt::join(parts, ", "));
    }
    for (const auto& [halves, name] : lane_fragments_) {
      std::vector<std::string> parts;
      for (std::size_t i = 0; i < halves.first.size(); ++i)
        parts.push_back(fmt::format("(tid & 4u) ? 0x{:08x}u ^ (kc_zero << {}) : 0x{:08x}u ^ (kc_zero << {})", halves.second[i],
                                    seen[halves.second[i]]++ % 32, halves.first[i], seen[halves.first[i]]++ % 32));
      decl += fmt::format("  const ab::u32 {}[{}] = {{{}}};\n", name, halves.first.size(), fmt::join(parts, ", "));
    }
    out_.insert(constants_at_, decl);
  }
  const std::int64_t shared = std::max(typing_.shared.total_bytes, scratch_bytes_);
  if (shared != typing_.shared.total_bytes) {  // the header comment states the real amount
    const auto eol = out_.find('\n');
    out_.replace(0, eol, fmt::format("// Generated by anybit from program '{}': {} warps, {} bytes of shared memory ({} of "
                                     "them reduction scratch).",
                                     program_.name, program_.warps, shared, shared - typing_.shared.total_bytes));
  }
  return EmittedKernel{program_.name, out_, static_cast<int>(program_.threads()), shared, fallbacks_, instructions_, bounds,
                       divisible};
}

}  // namespace detail

void check_grid_limits(const std::string& kernel, const std::array<std::int64_t, 3>& grid) {
  const std::int64_t limit[3] = {INT32_MAX, 65535, 65535};
  for (int d = 0; d < 3; ++d)
    if (grid[d] < 0 || grid[d] > limit[d])
      throw Error(fmt::format("kernel {}: grid dimension {} is {}, outside CUDA's range 0..{}", kernel, "xyz"[d],
                              grid[d], limit[d]));
}

void check_param_assumptions(const EmittedKernel& kernel, const std::map<std::string, std::int64_t>& scalars) {
  for (const auto& [name, bound] : kernel.bounds)
    if (auto it = scalars.find(name); it != scalars.end() && it->second > bound)
      throw Error(fmt::format("kernel {}: parameter {} = {} exceeds the bound {} it was compiled for", kernel.name, name,
                              it->second, bound));
  for (const auto& [name, d] : kernel.divisibility)
    if (auto it = scalars.find(name); it != scalars.end() && it->second % d != 0)
      throw Error(fmt::format("kernel {}: parameter {} = {} is not a multiple of {}, which it was compiled for", kernel.name,
                              name, it->second, d));
}

EmittedKernel emit_cuda(const vm::Program& program, const EmitOptions& options) {
  return detail::Emitter(program, options).run();
}

}  // namespace anybit::backend_cuda
