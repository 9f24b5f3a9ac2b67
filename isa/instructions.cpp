#include "isa/instructions.h"

#include <algorithm>
#include <cmath>

#include "isa/error.h"
#include "layout/mma_layouts.h"

namespace anybit::isa {

namespace {

// Whether the threads holding each thread's bits are the same in both layouts (same thread count).
bool same_replicas(const layout::RegisterLayout& a, const layout::RegisterLayout& b) {
  if (a.replication() != b.replication()) return false;
  if (a.local_size() == 0 || b.local_size() == 0) return a.local_size() == b.local_size();
  for (std::int64_t t = 0; t < a.num_threads(); ++t)
    if (a.threads_of(a.logical_index(t, 0)) != b.threads_of(b.logical_index(t, 0))) return false;
  return true;
}

// "" when every thread holds the same elements (and replicas) in both layouts, slot orders aside; else the
// first difference.
std::string same_elements_per_thread(const layout::RegisterLayout& a, const layout::RegisterLayout& b) {
  if (a.num_threads() != b.num_threads() || a.local_size() != b.local_size() || a.replication() != b.replication())
    return fmt::format("{} threads x {} slots (replication {}) against {} x {} ({})", a.num_threads(), a.local_size(),
                       a.replication(), b.num_threads(), b.local_size(), b.replication());
  for (std::int64_t t = 0; t < b.num_threads(); ++t)
    for (std::int64_t s = 0; s < b.local_size(); ++s) {
      const layout::Shape idx = b.logical_index(t, s);
      if (a.threads_of(idx) != b.threads_of(idx))
        return fmt::format("element [{}] is in thread {}'s slot {} of the result but not in that thread before",
                           fmt::join(idx, ","), t, s);
    }
  return "";
}

std::vector<OperandKind> operand_kinds(std::string_view spec) {
  std::vector<OperandKind> out;
  while (!spec.empty()) {
    const auto comma = spec.find(',');
    const std::string_view item = spec.substr(0, comma);
    out.push_back(item == "P" ? OperandKind::Param : item == "T[]" ? OperandKind::IndexedTensor : OperandKind::Tensor);
    spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
  }
  return out;
}

std::string shape_text(const layout::Shape& s) { return fmt::format("[{}]", fmt::join(s, ",")); }

// Constant shape attribute, or an error.
std::optional<layout::Shape> constant_shape(const std::vector<Expr>& exprs, std::string& error) {
  layout::Shape out;
  for (const Expr& e : exprs) {
    if (!e.is_constant() || e.constant() < 1) {
      error = fmt::format("shape entries must be positive constants, got '{}'", e.to_string());
      return std::nullopt;
    }
    out.push_back(e.constant());
  }
  return out;
}

// A thread has at most 255 32-bit registers; a tile that needs more per thread cannot exist.
constexpr std::int64_t kMaxBitsPerThread = 255 * 32;

std::string check_register_layout(const TensorType& t, std::int64_t threads) {
  if (!t.layout) return {};
  if (t.bits_per_thread() > kMaxBitsPerThread)
    return fmt::format("the tile holds {} bits per thread ({} x {}), over the {} bits of a thread's 255 registers; "
                       "spread it over more threads or split it",
                       t.bits_per_thread(), t.layout->local_size(), t.dtype.name(), kMaxBitsPerThread);
  if (t.layout->shape() != t.shape)
    return fmt::format("layout {} has shape {} but the tile is {}", t.layout->to_string(),
                       shape_text(t.layout->shape()), shape_text(t.shape));
  if (threads > 0 && t.layout->num_threads() != threads)
    return fmt::format("layout {} spreads the tile over {} threads but the block has {} ({} warps)",
                       t.layout->to_string(), t.layout->num_threads(), threads, threads / 32);
  return {};
}

bool same_layout(const TensorType& a, const TensorType& b) {
  if (!a.layout || !b.layout) return true;  // open layouts are made equal by layout inference
  return *a.layout == *b.layout;
}

std::string describe(const TensorType& t) { return t.to_string(); }

// Elementwise operands: same dtype, shape and layout.
std::string check_same(const std::vector<const TensorType*>& ts, const char* what) {
  for (std::size_t i = 1; i < ts.size(); ++i) {
    if (ts[i]->dtype != ts[0]->dtype)
      return fmt::format("{} operands must have one dtype, got {} and {}", what, ts[0]->dtype.name(),
                         ts[i]->dtype.name());
    if (ts[i]->shape != ts[0]->shape)
      return fmt::format("{} operands must have one shape, got {} and {}", what, shape_text(ts[0]->shape),
                         shape_text(ts[i]->shape));
    if (!same_layout(*ts[0], *ts[i]))
      return fmt::format("{} operands must have one layout, got {} and {}", what, ts[0]->layout->to_string(),
                         ts[i]->layout->to_string());
  }
  return {};
}

std::string require_scope(const TensorType& t, Scope scope, std::size_t index) {
  static const char* names[] = {"a global view", "a shared tile", "a register tile"};
  if (t.scope != scope)
    return fmt::format("operand {} must be {}, got {}", index + 1, names[static_cast<int>(scope)], describe(t));
  return {};
}

std::string check_offset(const Operand& op, const TensorType& t) {
  if (static_cast<int>(op.index.size()) != t.rank())
    return fmt::format("offset of {} has {} entries but the tensor has rank {}", op.name, op.index.size(), t.rank());
  return {};
}

std::string check_tile_against(const TensorType& tile, const TensorType& mem) {
  if (tile.dtype != mem.dtype)
    return fmt::format("the register tile is {} but the memory is {}; insert a cast", tile.dtype.name(),
                       mem.dtype.name());
  if (tile.rank() != mem.rank())
    return fmt::format("the tile has rank {} but the memory has rank {}", tile.rank(), mem.rank());
  if (mem.scope == Scope::Shared)
    for (int d = 0; d < tile.rank(); ++d)
      if (tile.shape[d] > mem.shape[d])
        return fmt::format("tile {} does not fit the shared tile {}", shape_text(tile.shape),
                           shape_text(mem.shape));
  return {};
}

bool arithmetic(DataType t) { return !t.is_bool(); }

struct DotConfig {
  DataType a, c;
  layout::RegisterLayout (*atom_a)(), (*atom_b)(), (*atom_c)();
};

std::string check_dot(const CheckInput& in) {
  const TensorType &c = *in.operand_types[0], &a = *in.operand_types[1], &b = *in.operand_types[2];
  if (a.rank() != 2 || b.rank() != 2 || c.rank() != 2)
    return fmt::format("dot needs rank-2 tiles, got a {}, b {}, c {}", shape_text(a.shape), shape_text(b.shape),
                       shape_text(c.shape));
  if (a.shape[1] != b.shape[0] || c.shape[0] != a.shape[0] || c.shape[1] != b.shape[1])
    return fmt::format("dot shapes do not match: c {} += a {} . b {} needs a [M,K], b [K,N], c [M,N]",
                       shape_text(c.shape), shape_text(a.shape), shape_text(b.shape));
  if (a.dtype != b.dtype) return fmt::format("dot operands a and b differ in dtype: {} and {}", a.dtype.name(), b.dtype.name());
  using layout::mma_m16n8k16_a, layout::mma_m16n8k16_b, layout::mma_m16n8k16_c, layout::mma_m16n8k32_a,
      layout::mma_m16n8k32_b;
  const DataType f16 = DataType::f16(), bf16 = DataType::bf16(), f32 = DataType::f32(),
                 i32 = DataType::signed_int(32);
  const std::vector<DotConfig> configs = {
      {f16, f32, mma_m16n8k16_a, mma_m16n8k16_b, mma_m16n8k16_c},
      {f16, f16, mma_m16n8k16_a, mma_m16n8k16_b, mma_m16n8k16_c},
      {bf16, f32, mma_m16n8k16_a, mma_m16n8k16_b, mma_m16n8k16_c},
      {DataType::signed_int(8), i32, mma_m16n8k32_a, mma_m16n8k32_b, mma_m16n8k16_c},
      {DataType::unsigned_int(8), i32, mma_m16n8k32_a, mma_m16n8k32_b, mma_m16n8k16_c},
  };
  const auto cfg = std::find_if(configs.begin(), configs.end(),
                                [&](const DotConfig& d) { return d.a == a.dtype && d.c == c.dtype; });
  if (cfg == configs.end())
    return fmt::format("no tensor-core dot for {} x {} -> {}; supported: f16 -> f32|f16, bf16 -> f32, "
                       "int8|uint8 -> int32",
                       a.dtype.name(), b.dtype.name(), c.dtype.name());
  if (!a.layout || !b.layout || !c.layout) return {};  // layout inference picks them
  const std::pair<const TensorType*, layout::RegisterLayout> operands[] = {
      {&a, cfg->atom_a()}, {&b, cfg->atom_b()}, {&c, cfg->atom_c()}};
  const char* names[] = {"a", "b", "c"};
  if (!layout::divides(*c.layout, cfg->atom_c()))
    return fmt::format("dot operand c has layout {}, which is not a warp arrangement of the mma fragment {}",
                       c.layout->to_string(), cfg->atom_c().to_string());
  const auto qc = layout::divide(*c.layout, cfg->atom_c());
  const std::int64_t tk = cfg->atom_a().shape()[1], tiles_k = a.shape[1] / tk;
  // Operands that are not atom-ordered (e.g. a transposed tile) are accepted when every warp holds each
  // fragment it multiplies in whole registers, the same way on every lane and warp (the emitter gathers them).
  const bool ordered = layout::divides(*a.layout, cfg->atom_a()) && layout::divides(*b.layout, cfg->atom_b());
  for (int i = 0; i < 2 && !ordered; ++i) {
    for (std::int64_t w = 0; w < qc.num_threads(); ++w)
      for (std::int64_t l = 0; l < qc.local_size(); ++l)
        for (std::int64_t k = 0; k < tiles_k; ++k) {
          const layout::Shape ij = qc.logical_index(w, l);
          const layout::Shape origin = i == 0 ? layout::Shape{ij[0] * 16, k * tk} : layout::Shape{k * tk, ij[1] * 8};
          if (!layout::fragment_words(*operands[i].first->layout, operands[i].second, origin, w,
                                      operands[i].first->dtype.bits()))
            return fmt::format("dot operand {} has layout {}, which is not a warp arrangement of the mma fragment {} "
                               "(warp {} does not hold the fragment at ({}, {}) in whole registers)",
                               names[i], operands[i].first->layout->to_string(), operands[i].second.to_string(), w,
                               origin[0], origin[1]);
        }
  }
  if (!ordered) return {};
  // The warp arrangements must agree: every warp computing C fragment (i, j) holds A fragments (i, k) and
  // B fragments (k, j) for every k.
  const auto qa = layout::divide(*a.layout, cfg->atom_a()), qb = layout::divide(*b.layout, cfg->atom_b());
  for (std::int64_t w = 0; w < qc.num_threads(); ++w)
    for (std::int64_t l = 0; l < qc.local_size(); ++l) {
      const layout::Shape ij = qc.logical_index(w, l);
      for (std::int64_t k = 0; k < tiles_k; ++k) {
        const layout::Shape ik = {ij[0], k}, kj = {k, ij[1]};
        const auto warps_a = qa.threads_of(ik), warps_b = qb.threads_of(kj);
        if (!std::binary_search(warps_a.begin(), warps_a.end(), w))
          return fmt::format("dot: warp {} computes C fragment ({}, {}) but does not hold A fragment ({}, {}); "
                             "arrange a's warps like c's rows (replicate a over c's warp columns)",
                             w, ij[0], ij[1], ij[0], k);
        if (!std::binary_search(warps_b.begin(), warps_b.end(), w))
          return fmt::format("dot: warp {} computes C fragment ({}, {}) but does not hold B fragment ({}, {}); "
                             "arrange b's warps like c's columns (replicate b over c's warp rows)",
                             w, ij[0], ij[1], k, ij[1]);
      }
    }
  return {};
}

}  // namespace

const std::vector<InstructionInfo>& instruction_table() {
  static const std::vector<InstructionInfo> table = {
#define X(e, name, ops, result, decl, allowed, required, summary) \
  {Opcode::e, name, operand_kinds(ops), result, TypeDecl::decl, allowed, required, summary},
#include "isa/instructions.def"
#undef X
  };
  return table;
}

const InstructionInfo& info(Opcode op) { return instruction_table()[static_cast<std::size_t>(op)]; }

std::optional<Opcode> find_opcode(std::string_view name) {
  for (const auto& i : instruction_table())
    if (name == i.name) return i.opcode;
  return std::nullopt;
}

std::string check_exact_rescale(DataType from, DataType to, std::int64_t exp) {
  if (!to.is_float()) return fmt::format("exp={} needs a floating-point destination, not {}", exp, to.name());
  if (from.bits() > 16 || from.is_bool())
    return fmt::format("exp={} needs a source of at most 16 bits (every value is checked), not {}", exp, from.name());
  // 2^exp a normal f32 (the lowerings multiply by it in f32 where no field move does the work).
  if (exp < -126 || exp > 127) return fmt::format("exp={} is out of range (-126..127)", exp);
  // Every finite value of the source, times 2^exp, must be a value of the destination: the cast then
  // rounds nothing, and any lowering (a packed multiply, a moved exponent field) computes the same.
  for (std::uint32_t code = 0; code <= from.code_mask(); ++code) {
    const double v = decode(from, code);
    if (!std::isfinite(v)) continue;
    const double scaled = std::ldexp(v, static_cast<int>(exp));
    if (decode(to, encode(to, scaled)) != scaled)
      return fmt::format("exp={} does not rescale {} exactly into {}: code 0x{:x} ({}) becomes {}", exp, from.name(),
                         to.name(), code, v, scaled);
  }
  return {};
}

const char* attr_name(Attr a) {
  switch (a) {
    case DTYPE: return "dtype";
    case SHAPE: return "shape";
    case STRIDES: return "strides";
    case DIMS: return "dims";
    case OP: return "op";
    case N: return "n";
    case INIT: return "init";
    case MASKED: return "masked";
    case EXP: return "exp";
    case FINITE: return "finite";
  }
  return "?";
}

bool masked_along(const Attributes& a, int d) {
  const auto& dims = a.masked_dims;
  return a.masked && (dims.empty() || std::find(dims.begin(), dims.end(), d) != dims.end());
}

bool has_attribute(const Attributes& a, Attr which) {
  switch (which) {
    case DTYPE: return a.dtype.has_value();
    case SHAPE: return a.shape.has_value();
    case STRIDES: return a.strides.has_value();
    case DIMS: return a.dims.has_value();
    case OP: return a.op.has_value();
    case N: return a.n.has_value();
    case INIT: return a.init.has_value();
    case MASKED: return a.masked;
    case EXP: return a.exp.has_value();
    case FINITE: return a.finite;
  }
  return false;
}

bool is_elementwise(Opcode op) {
  switch (op) {
    case Opcode::Neg:
    case Opcode::Abs:
    case Opcode::Add:
    case Opcode::Sub:
    case Opcode::Mul:
    case Opcode::Div:
    case Opcode::Min:
    case Opcode::Max:
    case Opcode::Fma:
    case Opcode::Where: return true;
    default: return false;
  }
}

std::optional<std::size_t> updated_operand(Opcode op) {
  if (op == Opcode::Dot || op == Opcode::Assign) return 0;
  return std::nullopt;
}

CheckResult check_instruction(const CheckInput& in) {
  const Instruction& inst = in.inst;
  const auto& ts = in.operand_types;
  auto fail = [](std::string e) { return CheckResult{std::nullopt, std::move(e)}; };
  auto ok = [](TensorType t) { return CheckResult{std::move(t), {}}; };
  // Scope rules per operand position come first, so every later rule can rely on them.
  auto scopes = [&](std::initializer_list<Scope> expected) -> std::string {
    std::size_t i = 0;
    for (Scope s : expected) {
      if (auto e = require_scope(*ts[i], s, i); !e.empty()) return e;
      if (i < inst.operands.size() && !inst.operands[i].index.empty())
        if (auto e2 = check_offset(inst.operands[i], *ts[i]); !e2.empty()) return e2;
      ++i;
    }
    return {};
  };
  // masked=[D, ...]: dimensions of the global view (operand `view`), ascending, each once.
  auto masked_dims = [&](std::size_t view) -> std::string {
    const auto& dims = inst.attrs.masked_dims;
    for (std::size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] >= ts[view]->rank())
        return fmt::format("masked=[{}] names dimension {}, but the global view has rank {}", fmt::join(dims, ", "), dims[i],
                           ts[view]->rank());
      if (i > 0 && dims[i] <= dims[i - 1])
        return fmt::format("masked=[{}] must list dimensions in ascending order, each once", fmt::join(dims, ", "));
    }
    return {};
  };
  std::string e;
  switch (inst.opcode) {
    case Opcode::GlobalView: {
      if (!in.param_dtype) return fail(fmt::format("'{}' is not a pointer parameter", inst.operands[0].name));
      if (inst.attrs.shape->empty()) return fail("a global view needs at least one dimension");
      if (inst.attrs.shape->size() != inst.attrs.strides->size())
        return fail(fmt::format("global view has {} shape entries but {} strides", inst.attrs.shape->size(),
                                inst.attrs.strides->size()));
      TensorType t;
      t.scope = Scope::Global;
      t.dtype = *in.param_dtype;
      t.global_shape = *inst.attrs.shape;
      t.global_strides = *inst.attrs.strides;
      t.param = inst.operands[0].name;
      return ok(t);
    }
    case Opcode::AllocShared: return ok(*inst.type);
    case Opcode::AllocRegister:
      if (inst.attrs.init && inst.type->dtype.is_integer() && *inst.attrs.init != static_cast<double>(static_cast<std::int64_t>(*inst.attrs.init)))
        return fail(fmt::format("init {} is not an integer, but the tile is {}", *inst.attrs.init, inst.type->dtype.name()));
      if (e = check_register_layout(*inst.type, in.threads); !e.empty()) return fail(e);
      return ok(*inst.type);
    case Opcode::FreeShared:
      if (e = scopes({Scope::Shared}); !e.empty()) return fail(e);
      return {};
    case Opcode::LoadGlobal:
    case Opcode::LoadShared:
      if (e = scopes({inst.opcode == Opcode::LoadGlobal ? Scope::Global : Scope::Shared}); !e.empty()) return fail(e);
      if (e = masked_dims(0); !e.empty()) return fail(e);
      if (e = check_tile_against(*inst.type, *ts[0]); !e.empty()) return fail(e);
      if (e = check_register_layout(*inst.type, in.threads); !e.empty()) return fail(e);
      return ok(*inst.type);
    case Opcode::StoreGlobal:
    case Opcode::StoreShared:
      if (e = scopes({Scope::Register, inst.opcode == Opcode::StoreGlobal ? Scope::Global : Scope::Shared}); !e.empty())
        return fail(e);
      if (e = masked_dims(1); !e.empty()) return fail(e);
      if (e = check_tile_against(*ts[0], *ts[1]); !e.empty()) return fail(e);
      return {};
    case Opcode::CopyAsync: {
      if (e = scopes({Scope::Shared, Scope::Global}); !e.empty()) return fail(e);
      if (e = masked_dims(1); !e.empty()) return fail(e);
      auto shape = constant_shape(*inst.attrs.shape, e);
      if (!shape) return fail(e);
      if (ts[0]->dtype != ts[1]->dtype)
        return fail(fmt::format("copy_async between {} shared memory and {} global memory; both must match",
                                ts[0]->dtype.name(), ts[1]->dtype.name()));
      if (ts[0]->rank() != ts[1]->rank())
        return fail(fmt::format("copy_async between a rank-{} shared tile and a rank-{} global view; the ranks must "
                                "match (give the view size-1 dimensions)",
                                ts[0]->rank(), ts[1]->rank()));
      if (static_cast<int>(shape->size()) != ts[0]->rank())
        return fail(fmt::format("copy shape {} has rank {} but the tensors have rank {}", shape_text(*shape),
                                shape->size(), ts[0]->rank()));
      TensorType tile = TensorType::registers(ts[0]->dtype, *shape);
      if (e = check_tile_against(tile, *ts[0]); !e.empty()) return fail(e);
      return {};
    }
    case Opcode::CommitGroup:
    case Opcode::SyncThreads: return {};
    case Opcode::WaitGroup:
      if (*inst.attrs.n < 0 || *inst.attrs.n > 8) return fail(fmt::format("wait_group n={} must be in 0..8", *inst.attrs.n));
      return {};
    case Opcode::Cast: {
      if (e = scopes({Scope::Register}); !e.empty()) return fail(e);
      TensorType t = *ts[0];
      t.dtype = *inst.attrs.dtype;
      if (inst.attrs.exp) {
        if (e = check_exact_rescale(ts[0]->dtype, t.dtype, *inst.attrs.exp); !e.empty()) return fail(e);
      }
      if (!inst.type) return ok(t);
      // A declared result: the same elements in every thread, in another slot order (a packed format's
      // code order differs from the order an instruction consumes).
      const TensorType& to = *inst.type;
      if (!(to.dtype == t.dtype))
        return fail(fmt::format("the declared type {} must have the dtype attribute's type {}", describe(to), t.dtype.name()));
      if (to.shape != t.shape) return fail(fmt::format("the declared type {} must keep the shape of {}", describe(to), describe(t)));
      if (!to.layout || !t.layout) return fail("a cast with a declared type needs both layouts concrete");
      if (e = check_register_layout(to, in.threads); !e.empty()) return fail(e);
      if (e = same_elements_per_thread(*t.layout, *to.layout); !e.empty())
        return fail(fmt::format("{} cannot become {} by reordering each thread's slots: {}", describe(t), describe(to), e));
      return ok(to);
    }
    case Opcode::Neg:
    case Opcode::Abs:
      if (e = scopes({Scope::Register}); !e.empty()) return fail(e);
      if (!ts[0]->dtype.is_signed())
        return fail(fmt::format("{} needs a signed type, got {}", info(inst.opcode).name, ts[0]->dtype.name()));
      return ok(*ts[0]);
    case Opcode::Add:
    case Opcode::Sub:
    case Opcode::Mul:
    case Opcode::Div:
    case Opcode::Min:
    case Opcode::Max:
    case Opcode::Fma: {
      if (e = scopes(ts.size() == 2 ? std::initializer_list<Scope>{Scope::Register, Scope::Register}
                                    : std::initializer_list<Scope>{Scope::Register, Scope::Register, Scope::Register});
          !e.empty())
        return fail(e);
      if (e = check_same(ts, info(inst.opcode).name); !e.empty()) return fail(e);
      if (!arithmetic(ts[0]->dtype)) return fail(fmt::format("{} is not defined on bool", info(inst.opcode).name));
      return ok(*ts[0]);
    }
    case Opcode::Where: {
      if (e = scopes({Scope::Register, Scope::Register, Scope::Register}); !e.empty()) return fail(e);
      if (!ts[0]->dtype.is_bool()) return fail(fmt::format("where's condition must be bool, got {}", ts[0]->dtype.name()));
      if (e = check_same({ts[1], ts[2]}, "where"); !e.empty()) return fail(e);
      if (ts[0]->shape != ts[1]->shape || !same_layout(*ts[0], *ts[1]))
        return fail("where's condition must have the shape and layout of its operands");
      return ok(*ts[1]);
    }
    case Opcode::Reduce: {
      if (e = scopes({Scope::Register}); !e.empty()) return fail(e);
      const std::string& op = *inst.attrs.op;
      if (op != "add" && op != "max" && op != "min")
        return fail(fmt::format("reduce op '{}' is not one of add, max, min", op));
      TensorType t = *ts[0];
      for (int d : *inst.attrs.dims) {
        if (d < 0 || d >= t.rank()) return fail(fmt::format("reduce dimension {} out of range for rank {}", d, t.rank()));
        t.shape[d] = 1;
      }
      if (t.layout) {
        try {
          t.layout = layout::reduce(*t.layout, *inst.attrs.dims);
        } catch (const Error& err) {
          return fail(err.what());
        }
      }
      return ok(t);
    }
    case Opcode::Dot:
      if (e = scopes({Scope::Register, Scope::Register, Scope::Register}); !e.empty()) return fail(e);
      if (e = check_dot(in); !e.empty()) return fail(e);
      return {};
    case Opcode::View: {
      if (e = scopes({Scope::Register}); !e.empty()) return fail(e);
      const TensorType& to = *inst.type;
      if (e = check_register_layout(to, in.threads); !e.empty()) return fail(e);
      if (ts[0]->layout && to.layout && ts[0]->bits_per_thread() != to.bits_per_thread())
        return fail(fmt::format("view needs equal bits per thread: {} holds {} x {} = {} bits per thread, {} holds "
                                "{} x {} = {}",
                                describe(*ts[0]), ts[0]->layout->local_size(), ts[0]->dtype.bits(),
                                ts[0]->bits_per_thread(), describe(to), to.layout->local_size(), to.dtype.bits(),
                                to.bits_per_thread()));
      if (ts[0]->layout && to.layout && ts[0]->layout->num_threads() != to.layout->num_threads())
        return fail("view must keep the thread count");
      // Replicated layouts: threads holding equal bits must do so before and after (e.g. a transposing view
      // of an operand every warp holds).
      if (ts[0]->layout && to.layout && (ts[0]->layout->replication() != 1 || to.layout->replication() != 1) &&
          !same_replicas(*ts[0]->layout, *to.layout))
        return fail("view of replicated layouts needs the same replicas: threads holding the same bits before must "
                    "hold the same bits after");
      return ok(to);
    }
    case Opcode::Reshape: {
      if (e = scopes({Scope::Register}); !e.empty()) return fail(e);
      auto shape = constant_shape(*inst.attrs.shape, e);
      if (!shape) return fail(e);
      TensorType t = *ts[0];
      t.shape = *shape;
      try {
        if (t.layout) t.layout = layout::reshape(*t.layout, *shape);
        else {
          std::int64_t a = 1, b = 1;
          for (auto s : ts[0]->shape) a *= s;
          for (auto s : *shape) b *= s;
          if (a != b) return fail(fmt::format("cannot reshape {} elements to {}", a, shape_text(*shape)));
        }
      } catch (const Error& err) {
        return fail(err.what());
      }
      return ok(t);
    }
    case Opcode::Assign:
      if (e = scopes({Scope::Register, Scope::Register}); !e.empty()) return fail(e);
      if (e = check_same(ts, "assign"); !e.empty()) return fail(e);
      return {};
  }
  ANYBIT_ASSERT(false, "no check for opcode {}", static_cast<int>(inst.opcode));
}

}  // namespace anybit::isa
