#include "vm/interpreter.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstring>
#include <deque>
#include <variant>

#include "isa/bitpack.h"
#include "isa/error.h"

namespace anybit::vm {

namespace {

using isa::DataType;
using layout::Shape;

struct GlobalView {
  DataType dtype;
  std::span<std::uint8_t> buffer;
  std::string param;
  Shape shape, strides;
};

struct SharedTile {
  TensorType type;
  std::int64_t byte_offset = 0;
};

// Per-thread storage of a register tile: threads[t] holds local slot l at bit l * dtype bits.
struct RegisterTile {
  TensorType type;
  std::vector<std::vector<std::uint8_t>> threads;

  std::uint32_t get(std::int64_t t, std::int64_t l) const { return isa::read_code(threads[t], l, type.dtype.bits()); }
  void set(std::int64_t t, std::int64_t l, std::uint32_t code) { isa::write_code(threads[t], l, type.dtype.bits(), code); }
};

using RuntimeValue = std::variant<GlobalView, SharedTile, RegisterTile>;

struct PendingCopy {
  std::int64_t bit_offset;
  int bits;
  std::uint32_t code;
};

double round_to_odd_fma(double a, double b, double c) {
  // fma in round-toward-zero, then set the sticky bit when inexact: rounding this once more to any format
  // with at most 51 significand bits gives the correctly rounded a * b + c.
  const int saved = std::fegetround();
  std::fesetround(FE_TOWARDZERO);
  std::feclearexcept(FE_INEXACT);
  volatile double r = std::fma(a, b, c);
  const bool inexact = std::fetestexcept(FE_INEXACT);
  std::fesetround(saved);
  double out = r;
  if (inexact && std::isfinite(out)) {
    std::uint64_t bits;
    std::memcpy(&bits, &out, sizeof bits);
    bits |= 1u;
    std::memcpy(&out, &bits, sizeof bits);
  }
  return out;
}

// min and max: a NaN operand yields the other operand, and -0 < +0 (as the runtime's fmin_/fmax_).
double vm_min(double a, double b) {
  if (std::isnan(a)) return b;
  if (std::isnan(b)) return a;
  if (a != b) return a < b ? a : b;
  return std::signbit(a) ? a : b;
}
double vm_max(double a, double b) {
  if (std::isnan(a)) return b;
  if (std::isnan(b)) return a;
  if (a != b) return a > b ? a : b;
  return std::signbit(a) ? b : a;
}

std::int64_t wrap(DataType t, std::int64_t v) {
  if (t.bits() >= 64) return v;
  const std::uint64_t mask = (std::uint64_t{1} << t.bits()) - 1;
  std::uint64_t u = static_cast<std::uint64_t>(v) & mask;
  if (t.kind() == isa::TypeKind::SignedInt && (u >> (t.bits() - 1)) & 1u) u |= ~mask;
  return static_cast<std::int64_t>(u);
}

class BlockRunner {
 public:
  BlockRunner(const Program& p, const Typing& typing, const Arguments& args, std::array<std::int64_t, 3> block)
      : program_(p), typing_(typing), args_(args), shared_(static_cast<std::size_t>(typing.shared.total_bytes), 0),
        pending_bits_(shared_.size() * 8, false) {
    for (const auto& [name, value] : args.scalars) scalars_[name] = value;
    scalars_["blockIdx.x"] = block[0];
    scalars_["blockIdx.y"] = block[1];
    scalars_["blockIdx.z"] = block[2];
  }

  void run() {
    body(program_.body);
    if (!uncommitted_.empty() || !groups_.empty())
      throw Error(fmt::format("program '{}': a block ended with async copies in flight; add commit_group and "
                              "wait_group {{n=0}}",
                              program_.name));
  }

 private:
  [[noreturn]] void fail(const Instruction& inst, const std::string& message) const {
    throw Error(fmt::format("{}: {}: {} (block {}, {}, {})", inst.location, isa::info(inst.opcode).name, message,
                            scalars_.at("blockIdx.x"), scalars_.at("blockIdx.y"), scalars_.at("blockIdx.z")));
  }

  std::int64_t eval(const Expr& e) const {
    return isa::evaluate(e, [&](const std::string& n) -> std::optional<std::int64_t> {
      auto it = scalars_.find(n);
      if (it == scalars_.end()) return std::nullopt;
      return it->second;
    });
  }
  Shape eval_all(const std::vector<Expr>& es) const {
    Shape out;
    for (const Expr& e : es) out.push_back(eval(e));
    return out;
  }

  template <typename T>
  T& get(const std::string& name) {
    return std::get<T>(values_.at(name));
  }

  RegisterTile make_tile(const TensorType& t, const Instruction& inst) {
    if (!t.layout) fail(inst, "the register layout is open; run passes::infer_layouts first (vmc interp does)");
    RegisterTile tile{t, {}};
    tile.threads.assign(t.layout->num_threads(),
                        std::vector<std::uint8_t>(isa::packed_bytes(t.layout->local_size(), t.dtype.bits()), 0));
    return tile;
  }

  // Logical index of every (thread, local) slot of a tile.
  template <typename Fn>
  void for_each_slot(const RegisterTile& tile, Fn fn) {
    const auto& l = *tile.type.layout;
    for (std::int64_t t = 0; t < l.num_threads(); ++t)
      for (std::int64_t s = 0; s < l.local_size(); ++s) fn(t, s, l.logical_index(t, s));
  }

  // Bit offset of a global element, with the view and buffer bounds checks.
  // A masked access reads zeros outside the view (writes nothing there) along its masked dimensions.
  std::optional<std::int64_t> global_bit(const Instruction& inst, const GlobalView& v, const Shape& idx,
                                         const std::string& view_name) {
    const auto& dims = inst.attrs.masked_dims;
    for (std::size_t d = 0; d < idx.size(); ++d)
      if (idx[d] < 0 || idx[d] >= v.shape[d]) {
        if (isa::masked_along(inst.attrs, static_cast<int>(d))) return std::nullopt;
        if (inst.attrs.masked)
          fail(inst, fmt::format("element [{}] is outside the view %{} of shape [{}] along dimension {}, which "
                                 "masked=[{}] does not name",
                                 fmt::join(idx, ", "), view_name, fmt::join(v.shape, ", "), d, fmt::join(dims, ", ")));
        fail(inst, fmt::format("element [{}] is outside the view %{} of shape [{}]; add {{masked}} to predicate the "
                               "tile's tail",
                               fmt::join(idx, ", "), view_name, fmt::join(v.shape, ", ")));
      }
    std::int64_t offset = 0;
    for (std::size_t d = 0; d < idx.size(); ++d) offset += idx[d] * v.strides[d];
    const std::int64_t bits = v.dtype.bits();
    if (offset < 0 || (offset + 1) * bits > static_cast<std::int64_t>(v.buffer.size()) * 8)
      fail(inst, fmt::format("element [{}] of %{} is at element offset {}, outside buffer '{}' of {} bytes",
                             fmt::join(idx, ", "), view_name, offset, v.param, v.buffer.size()));
    return offset * bits;
  }

  std::int64_t shared_bit(const Instruction& inst, const SharedTile& s, const Shape& idx, const std::string& name) {
    for (std::size_t d = 0; d < idx.size(); ++d)
      if (idx[d] < 0 || idx[d] >= s.type.shape[d])
        fail(inst, fmt::format("element [{}] is outside the shared tile %{} of shape [{}]", fmt::join(idx, ", "), name,
                               fmt::join(s.type.shape, ", ")));
    return s.byte_offset * 8 + s.type.shared->offset(idx) * s.type.dtype.bits();
  }

  std::uint32_t read_shared(const Instruction& inst, std::int64_t bit, int bits, const std::string& name) {
    for (int b = 0; b < bits; ++b)
      if (pending_bits_[bit + b])
        fail(inst, fmt::format("reads shared tile %{} where a copy_async is still in flight; add wait_group and "
                               "sync_threads first",
                               name));
    return isa::read_bits(shared_, bit, bits);
  }

  static Shape plus(const Shape& a, const Shape& b) {
    Shape out(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) out[i] = a[i] + b[i];
    return out;
  }

  void body(const Body& b) {
    for (const Statement& st : b) {
      if (const auto* inst = std::get_if<Instruction>(&st.node)) {
        instruction(*inst);
      } else if (const auto* let = std::get_if<Let>(&st.node)) {
        scalars_[let->name] = eval(let->value);
      } else if (const auto* loop = std::get_if<For>(&st.node)) {
        const std::int64_t begin = eval(loop->begin), end = eval(loop->end), step = eval(loop->step);
        if (step <= 0)
          throw Error(fmt::format("{}: for: loop step {} must be positive", st.location, step));
        for (std::int64_t i = begin; i < end; i += step) {
          scalars_[loop->var] = i;
          body(loop->body);
        }
        scalars_.erase(loop->var);
      } else if (const auto* branch = std::get_if<If>(&st.node)) {
        body(eval(branch->condition) ? branch->then_body : branch->else_body);
      }
    }
  }

  void instruction(const Instruction& inst) {
    const auto& ops = inst.operands;
    switch (inst.opcode) {
      case Opcode::GlobalView: {
        const TensorType& t = typing_.values.at(inst.result);
        auto it = args_.buffers.find(t.param);
        if (it == args_.buffers.end()) fail(inst, fmt::format("no buffer was given for pointer parameter '{}'", t.param));
        values_[inst.result] = GlobalView{t.dtype, it->second, t.param, eval_all(t.global_shape), eval_all(t.global_strides)};
        for (auto s : std::get<GlobalView>(values_[inst.result]).shape)
          if (s < 0) fail(inst, fmt::format("view %{} has a negative dimension {}", inst.result, s));
        return;
      }
      case Opcode::AllocShared:
        values_[inst.result] = SharedTile{*inst.type, typing_.shared.offsets.at(inst.result)};
        return;
      case Opcode::AllocRegister: {
        RegisterTile tile = make_tile(*inst.type, inst);
        const std::uint32_t code = isa::encode(inst.type->dtype, inst.attrs.init.value_or(0.0));
        for_each_slot(tile, [&](std::int64_t t, std::int64_t l, const Shape&) { tile.set(t, l, code); });
        values_[inst.result] = std::move(tile);
        return;
      }
      case Opcode::FreeShared: return;
      case Opcode::LoadGlobal: {
        const GlobalView& v = get<GlobalView>(ops[0].name);
        RegisterTile tile = make_tile(*inst.type, inst);
        const Shape offset = eval_all(ops[0].index);
        for_each_slot(tile, [&](std::int64_t t, std::int64_t l, const Shape& i) {
          auto bit = global_bit(inst, v, plus(offset, i), ops[0].name);
          tile.set(t, l, bit ? isa::read_bits(v.buffer, *bit, v.dtype.bits()) : 0u);
        });
        values_[inst.result] = std::move(tile);
        return;
      }
      case Opcode::StoreGlobal: {
        const RegisterTile& tile = get<RegisterTile>(ops[0].name);
        GlobalView& v = get<GlobalView>(ops[1].name);
        const Shape offset = eval_all(ops[1].index);
        for_each_logical(tile, [&](const Shape& i, std::uint32_t code) {
          if (auto bit = global_bit(inst, v, plus(offset, i), ops[1].name))
            isa::write_bits(v.buffer, *bit, v.dtype.bits(), code);
        });
        return;
      }
      case Opcode::LoadShared: {
        const SharedTile& s = get<SharedTile>(ops[0].name);
        RegisterTile tile = make_tile(*inst.type, inst);
        const Shape offset = eval_all(ops[0].index);
        for_each_slot(tile, [&](std::int64_t t, std::int64_t l, const Shape& i) {
          tile.set(t, l, read_shared(inst, shared_bit(inst, s, plus(offset, i), ops[0].name), s.type.dtype.bits(), ops[0].name));
        });
        values_[inst.result] = std::move(tile);
        return;
      }
      case Opcode::StoreShared: {
        const RegisterTile& tile = get<RegisterTile>(ops[0].name);
        const SharedTile& s = get<SharedTile>(ops[1].name);
        const Shape offset = eval_all(ops[1].index);
        for_each_logical(tile, [&](const Shape& i, std::uint32_t code) {
          const std::int64_t bit = shared_bit(inst, s, plus(offset, i), ops[1].name);
          isa::write_bits(shared_, bit, s.type.dtype.bits(), code);
        });
        return;
      }
      case Opcode::CopyAsync: {
        const SharedTile& s = get<SharedTile>(ops[0].name);
        const GlobalView& v = get<GlobalView>(ops[1].name);
        const Shape soff = eval_all(ops[0].index), goff = eval_all(ops[1].index), shape = eval_all(*inst.attrs.shape);
        std::int64_t count = 1;
        for (auto x : shape) count *= x;
        for (std::int64_t k = 0; k < count; ++k) {
          const Shape i = layout::delinearize(k, shape);
          auto gbit = global_bit(inst, v, plus(goff, i), ops[1].name);
          const std::uint32_t code = gbit ? isa::read_bits(v.buffer, *gbit, v.dtype.bits()) : 0u;  // zero-fill
          const std::int64_t sbit = shared_bit(inst, s, plus(soff, i), ops[0].name);
          uncommitted_.push_back({sbit, v.dtype.bits(), code});
          for (int b = 0; b < v.dtype.bits(); ++b) pending_bits_[sbit + b] = true;
        }
        return;
      }
      case Opcode::CommitGroup:
        groups_.push_back(std::move(uncommitted_));
        uncommitted_.clear();
        return;
      case Opcode::WaitGroup:
        while (static_cast<std::int64_t>(groups_.size()) > *inst.attrs.n) {
          for (const PendingCopy& c : groups_.front()) {
            isa::write_bits(shared_, c.bit_offset, c.bits, c.code);
            for (int b = 0; b < c.bits; ++b) pending_bits_[c.bit_offset + b] = false;
          }
          groups_.pop_front();
        }
        return;
      case Opcode::SyncThreads: return;  // the interpreter runs whole blocks in lockstep
      case Opcode::Cast: {
        const RegisterTile& x = get<RegisterTile>(ops[0].name);
        RegisterTile out = make_tile(typing_.values.at(inst.result), inst);
        const bool reordered = inst.type.has_value();  // a declared layout: same elements, other slots
        const int exp = static_cast<int>(inst.attrs.exp.value_or(0));
        for_each_slot(out, [&](std::int64_t t, std::int64_t l, const Shape& index) {
          const std::int64_t from = reordered ? x.type.layout->map(index).local : l;
          const double v = isa::decode(x.type.dtype, x.get(t, from));
          if (inst.attrs.finite && !std::isfinite(v))
            fail(inst, fmt::format("element [{}] of %{} is {}, but the cast is {{finite}}", fmt::join(index, ", "),
                                   ops[0].name, std::isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf"));
          out.set(t, l, isa::encode(out.type.dtype, std::ldexp(v, exp)));
        });
        values_[inst.result] = std::move(out);
        return;
      }
      case Opcode::Neg:
      case Opcode::Abs:
      case Opcode::Add:
      case Opcode::Sub:
      case Opcode::Mul:
      case Opcode::Div:
      case Opcode::Min:
      case Opcode::Max:
      case Opcode::Fma:
      case Opcode::Where: elementwise(inst); return;
      case Opcode::Reduce: reduce(inst); return;
      case Opcode::Dot: dot(inst); return;
      case Opcode::View:
      case Opcode::Reshape: {
        RegisterTile out = get<RegisterTile>(ops[0].name);  // the same bits per thread
        out.type = typing_.values.at(inst.result);
        values_[inst.result] = std::move(out);
        return;
      }
      case Opcode::Assign:
        get<RegisterTile>(ops[0].name).threads = get<RegisterTile>(ops[1].name).threads;
        return;
    }
    ANYBIT_ASSERT(false, "interpreter has no case for {}", isa::info(inst.opcode).name);
  }

  // Each logical element once, read from the first thread holding it.
  template <typename Fn>
  void for_each_logical(const RegisterTile& tile, Fn fn) {
    const auto& l = *tile.type.layout;
    const Shape shape = tile.type.shape;
    for (std::int64_t k = 0; k < l.size(); ++k) {
      const Shape i = layout::delinearize(k, shape);
      const auto p = l.map(i);
      fn(i, tile.get(p.thread, p.local));
    }
  }

  std::vector<double> logical_values(const RegisterTile& tile) {
    std::vector<double> out(static_cast<std::size_t>(tile.type.layout->size()));
    std::size_t k = 0;
    for_each_logical(tile, [&](const Shape&, std::uint32_t code) { out[k++] = isa::decode(tile.type.dtype, code); });
    return out;
  }

  void scatter(RegisterTile& tile, const std::vector<double>& values) {
    const Shape shape = tile.type.shape;
    for_each_slot(tile, [&](std::int64_t t, std::int64_t l, const Shape& i) {
      tile.set(t, l, isa::encode(tile.type.dtype, values[layout::linearize(i, shape)]));
    });
  }

  void elementwise(const Instruction& inst) {
    std::vector<const RegisterTile*> in;
    for (const auto& op : inst.operands) in.push_back(&get<RegisterTile>(op.name));
    RegisterTile out = make_tile(typing_.values.at(inst.result), inst);
    const DataType t = out.type.dtype;
    const bool integer = t.is_integer();
    for_each_slot(out, [&](std::int64_t th, std::int64_t l, const Shape&) {
      double x[3] = {};
      for (std::size_t k = 0; k < in.size(); ++k) x[k] = isa::decode(in[k]->type.dtype, in[k]->get(th, l));
      double r = 0;
      if (integer) {
        const auto a = static_cast<std::int64_t>(x[0]), b = static_cast<std::int64_t>(x[1]),
                   c = static_cast<std::int64_t>(x[2]);
        std::int64_t v = 0;
        switch (inst.opcode) {
          case Opcode::Neg: v = -a; break;
          case Opcode::Abs: v = a < 0 ? -a : a; break;
          case Opcode::Add: v = a + b; break;
          case Opcode::Sub: v = a - b; break;
          case Opcode::Mul: v = static_cast<std::int64_t>(static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b)); break;
          case Opcode::Div:
            if (b == 0) fail(inst, fmt::format("integer division by zero (thread {}, slot {})", th, l));
            v = a / b;
            break;
          case Opcode::Min: v = std::min(a, b); break;
          case Opcode::Max: v = std::max(a, b); break;
          case Opcode::Fma: v = static_cast<std::int64_t>(static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b)) + c; break;
          case Opcode::Where: v = a != 0 ? b : c; break;
          default: break;
        }
        out.set(th, l, static_cast<std::uint32_t>(wrap(t, v)) & t.code_mask());
        return;
      }
      switch (inst.opcode) {
        case Opcode::Neg: r = -x[0]; break;
        case Opcode::Abs: r = std::fabs(x[0]); break;
        case Opcode::Add: r = x[0] + x[1]; break;
        case Opcode::Sub: r = x[0] - x[1]; break;
        case Opcode::Mul: r = x[0] * x[1]; break;
        case Opcode::Div: r = x[0] / x[1]; break;
        case Opcode::Min: r = vm_min(x[0], x[1]); break;
        case Opcode::Max: r = vm_max(x[0], x[1]); break;
        case Opcode::Fma: r = round_to_odd_fma(x[0], x[1], x[2]); break;
        case Opcode::Where: r = x[0] != 0 ? x[1] : x[2]; break;
        default: break;
      }
      out.set(th, l, isa::encode(t, r));
    });
    values_[inst.result] = std::move(out);
  }

  void reduce(const Instruction& inst) {
    const RegisterTile& x = get<RegisterTile>(inst.operands[0].name);
    RegisterTile out = make_tile(typing_.values.at(inst.result), inst);
    const auto in = logical_values(x);
    const Shape& in_shape = x.type.shape;
    const Shape& out_shape = out.type.shape;
    const std::string& op = *inst.attrs.op;
    std::vector<double> acc(static_cast<std::size_t>(out.type.layout->size()),
                            op == "add" ? 0.0 : op == "max" ? -INFINITY : INFINITY);
    for (std::size_t k = 0; k < in.size(); ++k) {
      Shape i = layout::delinearize(static_cast<std::int64_t>(k), in_shape);
      for (int d : *inst.attrs.dims) i[d] = 0;
      double& a = acc[layout::linearize(i, out_shape)];
      a = op == "add" ? a + in[k] : op == "max" ? vm_max(a, in[k]) : vm_min(a, in[k]);
    }
    scatter(out, acc);
    values_[inst.result] = std::move(out);
  }

  void dot(const Instruction& inst) {
    RegisterTile& c = get<RegisterTile>(inst.operands[0].name);
    const RegisterTile& a = get<RegisterTile>(inst.operands[1].name);
    const RegisterTile& b = get<RegisterTile>(inst.operands[2].name);
    const std::int64_t M = a.type.shape[0], K = a.type.shape[1], N = b.type.shape[1];
    const auto av = logical_values(a), bv = logical_values(b);
    auto cv = logical_values(c);
    const bool integer = c.type.dtype.is_integer();
    for (std::int64_t m = 0; m < M; ++m)
      for (std::int64_t n = 0; n < N; ++n) {
        double& out = cv[m * N + n];
        if (integer) {
          std::int64_t acc = static_cast<std::int64_t>(out);
          for (std::int64_t k = 0; k < K; ++k)
            acc = wrap(c.type.dtype, acc + static_cast<std::int64_t>(av[m * K + k]) * static_cast<std::int64_t>(bv[k * N + n]));
          out = static_cast<double>(acc);
        } else {
          float acc = static_cast<float>(out);
          for (std::int64_t k = 0; k < K; ++k)
            acc += static_cast<float>(av[m * K + k]) * static_cast<float>(bv[k * N + n]);
          out = acc;
        }
      }
    scatter(c, cv);
  }

  const Program& program_;
  const Typing& typing_;
  const Arguments& args_;
  std::map<std::string, std::int64_t> scalars_;
  std::map<std::string, RuntimeValue> values_;
  std::vector<std::uint8_t> shared_;
  std::vector<bool> pending_bits_;
  std::vector<PendingCopy> uncommitted_;
  std::deque<std::vector<PendingCopy>> groups_;
};

}  // namespace

std::array<std::int64_t, 3> grid_size(const Program& program, const std::map<std::string, std::int64_t>& scalars) {
  std::array<std::int64_t, 3> grid = {1, 1, 1};
  for (std::size_t d = 0; d < program.grid.size() && d < 3; ++d) {
    grid[d] = isa::evaluate(program.grid[d], [&](const std::string& n) -> std::optional<std::int64_t> {
      auto it = scalars.find(n);
      if (it == scalars.end()) return std::nullopt;
      return it->second;
    });
    if (grid[d] < 0) throw Error(fmt::format("program '{}': grid dimension {} is negative ({})", program.name, d, grid[d]));
  }
  return grid;
}

void interpret(const Program& program, const Arguments& args, const InterpretOptions& options) {
  const Typing typing = verify(program, options.verify);
  for (const Param& p : program.params) {
    if (p.kind == ParamKind::Pointer && !args.buffers.count(p.name))
      throw Error(fmt::format("program '{}': no buffer given for pointer parameter '{}'", program.name, p.name));
    if (p.kind != ParamKind::Pointer) {
      auto it = args.scalars.find(p.name);
      if (it == args.scalars.end())
        throw Error(fmt::format("program '{}': no value given for parameter '{}'; pass it as NAME=VALUE", program.name, p.name));
      const std::int64_t lo = p.kind == ParamKind::I32 ? INT32_MIN : INT64_MIN, hi = p.kind == ParamKind::I32 ? INT32_MAX : INT64_MAX;
      if (it->second < lo || it->second > hi)
        throw Error(fmt::format("program '{}': parameter '{}' = {} does not fit i32", program.name, p.name, it->second));
    }
  }
  const auto grid = grid_size(program, args.scalars);
  if (grid[0] * grid[1] > options.max_blocks || grid[0] * grid[1] * grid[2] > options.max_blocks)
    throw Error(fmt::format("program '{}': grid ({}, {}, {}) has more than {} blocks", program.name, grid[0], grid[1],
                            grid[2], options.max_blocks));
  for (std::int64_t z = 0; z < grid[2]; ++z)
    for (std::int64_t y = 0; y < grid[1]; ++y)
      for (std::int64_t x = 0; x < grid[0]; ++x) BlockRunner(program, typing, args, {x, y, z}).run();
}

}  // namespace anybit::vm
