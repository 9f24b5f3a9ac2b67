#include "passes/infer_layouts.h"

#include <functional>
#include <map>
#include <optional>

#include "isa/error.h"
#include "layout/mma_layouts.h"
#include "vm/verifier.h"

namespace anybit::passes {

namespace {

using isa::Instruction;
using isa::TensorType;
using isa::Opcode;
using layout::RegisterLayout;
using layout::Shape;

std::int64_t largest_power_of_two_dividing(std::int64_t n, std::int64_t cap) {
  std::int64_t v = 1;
  while (v * 2 <= cap && n % (v * 2) == 0) v *= 2;
  return v;
}

struct Known {
  RegisterLayout layout;
  std::string origin;  // "location: %value" that fixed it
};

class Inference {
 public:
  Inference(const vm::Program& p) : program_(p), typing_(vm::verify(p)) {}

  vm::Program run() {
    collect(program_.body);
    for (bool changed = true; changed;) {
      changed = false;
      for (const auto& rule : derivations_) changed |= rule();
      if (!changed) {
        // Defaults, one class at a time in program order, then propagate again.
        for (const auto& [name, inst] : declared_) {
          if (known(name)) continue;
          const TensorType& t = typing_.values.at(name);
          assign(name, default_layout(t.shape, t.dtype, program_.threads()), inst->location + ": default for %" + name);
          changed = true;
          break;
        }
      }
    }
    vm::Program out = program_;
    write(out.body);
    vm::verify(out);
    return out;
  }

 private:
  std::string find(const std::string& v) {
    auto it = parent_.find(v);
    if (it == parent_.end() || it->second == v) return v;
    return it->second = find(it->second);
  }
  bool known(const std::string& v) { return classes_.count(find(v)) > 0; }
  const Known& get(const std::string& v) { return classes_.at(find(v)); }

  void assign(const std::string& v, const RegisterLayout& l, const std::string& origin) {
    const std::string root = find(v);
    auto it = classes_.find(root);
    if (it == classes_.end()) {
      classes_.emplace(root, Known{l, origin});
    } else if (!(it->second.layout == l)) {
      throw Error(fmt::format("layout conflict for %{}: {} requires {}, but {} requires {}", v, it->second.origin,
                              it->second.layout.to_string(), origin, l.to_string()));
    }
  }

  void unite(const std::string& a, const std::string& b, const std::string& where) {
    const std::string ra = find(a), rb = find(b);
    if (ra == rb) return;
    auto ka = classes_.find(ra), kb = classes_.find(rb);
    if (ka != classes_.end() && kb != classes_.end() && !(ka->second.layout == kb->second.layout))
      throw Error(fmt::format("layout conflict at {}: %{} has {} (from {}) but %{} has {} (from {}); they must be equal",
                              where, a, ka->second.layout.to_string(), ka->second.origin, b, kb->second.layout.to_string(),
                              kb->second.origin));
    parent_[rb] = ra;
    if (kb != classes_.end()) {
      if (ka == classes_.end()) classes_.emplace(ra, kb->second);
      classes_.erase(rb);
    }
  }

  void collect(const vm::Body& body) {
    for (const auto& st : body) {
      if (const auto* inst = std::get_if<Instruction>(&st.node)) instruction(*inst);
      if (const auto* loop = std::get_if<vm::For>(&st.node)) collect(loop->body);
      if (const auto* branch = std::get_if<vm::If>(&st.node)) {
        collect(branch->then_body);
        collect(branch->else_body);
      }
    }
  }

  void instruction(const Instruction& inst) {
    const auto& ops = inst.operands;
    const std::string at = inst.location + ": " + isa::info(inst.opcode).name;
    if (inst.type && inst.type->scope == isa::Scope::Register) {
      declared_.emplace_back(inst.result, &inst);
      if (inst.type->layout) assign(inst.result, *inst.type->layout, at + " %" + inst.result);
    }
    if (inst.opcode == Opcode::Cast && inst.type) return;  // its declared layout is its own (a slot reordering)
    if (isa::is_elementwise(inst.opcode) || inst.opcode == Opcode::Cast) {
      for (const auto& op : ops) unite(inst.result, op.name, at);
      return;
    }
    switch (inst.opcode) {
      case Opcode::Assign:
        unite(ops[0].name, ops[1].name, at);
        break;
      case Opcode::Reduce: {
        const std::string in = ops[0].name, out = inst.result;
        const std::vector<int> dims = *inst.attrs.dims;
        derivations_.push_back([this, in, out, dims, at] {
          if (!known(in) || known(out)) return false;
          assign(out, layout::reduce(get(in).layout, dims), at + " %" + out);
          return true;
        });
        break;
      }
      case Opcode::Reshape: {
        const std::string in = ops[0].name, out = inst.result;
        const Shape in_shape = typing_.values.at(in).shape, out_shape = typing_.values.at(out).shape;
        derivations_.push_back([this, in, out, in_shape, out_shape, at] {
          if (known(in) && !known(out)) {
            assign(out, layout::reshape(get(in).layout, out_shape), at + " %" + out);
            return true;
          }
          if (known(out) && !known(in)) {
            assign(in, layout::reshape(get(out).layout, in_shape), at + " %" + in);
            return true;
          }
          return false;
        });
        break;
      }
      case Opcode::View: {
        // Bytes <-> codes along the last dimension: the minor local mode of the last dimension scales by
        // the ratio of the bit widths; threads and every other mode stay.
        const std::string in = ops[0].name, out = inst.result;
        const TensorType& ti = typing_.values.at(in);
        const TensorType& to = *inst.type;
        derivations_.push_back([this, in, out, ti, to, at] {
          if (known(in) && !known(out)) {
            if (auto l = rescale(get(in).layout, ti, to)) return assign(out, *l, at + " %" + out), true;
          } else if (known(out) && !known(in)) {
            if (auto l = rescale(get(out).layout, to, ti)) return assign(in, *l, at + " %" + in), true;
          }
          return false;
        });
        break;
      }
      case Opcode::Dot: {
        const std::string c = ops[0].name, a = ops[1].name, b = ops[2].name;
        derivations_.push_back([this, a, b, c, at] { return dot(a, b, c, at); });
        break;
      }
      default: break;
    }
  }

  // `l` (of type `from`) with its last dimension's minor local mode of size v replaced by
  // v * from.bits / to.bits, when that gives `to`'s shape.
  static std::optional<RegisterLayout> rescale(const RegisterLayout& l, const TensorType& from, const TensorType& to) {
    const int rank = from.rank();
    if (rank == 0 || to.rank() != rank) return std::nullopt;
    for (int d = 0; d + 1 < rank; ++d)
      if (from.shape[d] != to.shape[d]) return std::nullopt;
    const std::int64_t bits_in = from.shape[rank - 1] * from.dtype.bits(), bits_out = to.shape[rank - 1] * to.dtype.bits();
    if (bits_in != bits_out) return std::nullopt;
    const auto& dim = l.dim_modes()[rank - 1];
    if (dim.empty() || l.local().empty() || l.local().back() != dim.back()) return std::nullopt;
    const std::int64_t v = l.modes()[dim.back()].size;
    if ((v * from.dtype.bits()) % to.dtype.bits() != 0) return std::nullopt;
    Shape unit(rank, 1), scaled(rank, 1);
    unit[rank - 1] = v;
    scaled[rank - 1] = v * from.dtype.bits() / to.dtype.bits();
    try {
      return layout::divide(l, layout::local(unit)) * layout::local(scaled);
    } catch (const Error&) {
      return std::nullopt;
    }
  }

  bool dot(const std::string& a, const std::string& b, const std::string& c, const std::string& at) {
    if (known(a) && known(b) && known(c)) return false;
    const TensorType& ta = typing_.values.at(a);
    const bool int8 = ta.dtype.bits() == 8;
    const RegisterLayout atom_a = int8 ? layout::mma_m16n8k32_a() : layout::mma_m16n8k16_a();
    const RegisterLayout atom_b = int8 ? layout::mma_m16n8k32_b() : layout::mma_m16n8k16_b();
    const RegisterLayout atom_c = layout::mma_m16n8k16_c();
    const Shape sc = typing_.values.at(c).shape;
    const std::int64_t m_tiles = sc[0] / 16, n_tiles = sc[1] / 8, k_tiles = ta.shape[1] / atom_a.shape()[1];
    if (sc[0] % 16 || sc[1] % 8 || ta.shape[1] % atom_a.shape()[1])
      throw Error(fmt::format("{}: tiles [{}, {}] x K {} are not multiples of the mma shape", at, sc[0], sc[1], ta.shape[1]));
    bool changed = false;
    if (!known(c)) {
      // Default warp arrangement: warps over M tiles first, then N tiles; the rest in local slots.
      const std::int64_t warps = program_.warps;
      const std::int64_t wm = largest_power_of_two_dividing(m_tiles, warps);
      const std::int64_t wn = largest_power_of_two_dividing(n_tiles, warps / wm);
      if (wm * wn != warps)
        throw Error(fmt::format("{}: cannot spread {} warps over {}x{} mma tiles; give %{} a layout", at, warps, m_tiles,
                                n_tiles, c));
      assign(c, layout::spatial({wm, wn}) * layout::local({m_tiles / wm, n_tiles / wn}) * atom_c, at + " (default) %" + c);
      changed = true;
    }
    const RegisterLayout qc = layout::divide(get(c).layout, atom_c);
    const int n_dim[] = {1}, m_dim[] = {0};
    if (!known(a)) {
      assign(a, layout::reduce(qc, n_dim) * layout::local({1, k_tiles}) * atom_a, at + " (from c) %" + a);
      changed = true;
    }
    if (!known(b)) {
      assign(b, layout::reduce(qc, m_dim) * layout::local({k_tiles, 1}) * atom_b, at + " (from c) %" + b);
      changed = true;
    }
    return changed;
  }

  void write(vm::Body& body) {
    for (auto& st : body) {
      if (auto* inst = std::get_if<Instruction>(&st.node)) {
        if (inst->type && inst->type->scope == isa::Scope::Register && !inst->type->layout)
          inst->type->layout = get(inst->result).layout;
      }
      if (auto* loop = std::get_if<vm::For>(&st.node)) write(loop->body);
      if (auto* branch = std::get_if<vm::If>(&st.node)) {
        write(branch->then_body);
        write(branch->else_body);
      }
    }
  }

  const vm::Program& program_;
  vm::Typing typing_;
  std::map<std::string, std::string> parent_;
  std::map<std::string, Known> classes_;
  std::vector<std::pair<std::string, const Instruction*>> declared_;
  std::vector<std::function<bool()>> derivations_;
};

}  // namespace

RegisterLayout default_layout(const Shape& shape, isa::DataType dtype, std::int64_t threads) {
  const int rank = static_cast<int>(shape.size());
  Shape outer(shape), spread(rank, 1), vector(rank, 1);
  if (rank > 0) {
    // Up to 16 bytes per thread along the last dimension, but never so wide that threads go idle.
    std::int64_t total = 1;
    for (auto s : shape) total *= s;
    const std::int64_t per_vector =
        std::max<std::int64_t>(1, std::min<std::int64_t>(128 / dtype.bits(), total / std::max<std::int64_t>(threads, 1)));
    vector[rank - 1] = largest_power_of_two_dividing(shape[rank - 1], per_vector);
    outer[rank - 1] /= vector[rank - 1];
  }
  std::int64_t left = threads;
  for (int d = rank - 1; d >= 0 && left > 1; --d) {
    const std::int64_t t = largest_power_of_two_dividing(outer[d], left);
    spread[d] = t;
    outer[d] /= t;
    left /= t;
  }
  RegisterLayout l = layout::local(outer) * layout::spatial(spread) * layout::local(vector);
  if (left > 1) l = layout::replicated(left) * l;  // more threads than vectors: the rest hold copies
  return l;
}

vm::Program infer_layouts(const vm::Program& program, const InferLayoutsOptions&) { return Inference(program).run(); }

}  // namespace anybit::passes
