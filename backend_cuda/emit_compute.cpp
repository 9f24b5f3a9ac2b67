// Compute instructions: casts, elementwise arithmetic, warp reductions and tensor-core dot.
#include <algorithm>
#include <optional>

#include <fmt/ranges.h>

#include "backend_cuda/emitter.h"
#include "layout/mma_layouts.h"

namespace anybit::backend_cuda::detail {

namespace {

int special_of(DataType t) {
  if (t.bits() == 8 && t.exponent_bits() == 5) return 1;  // IEEE-like f8e5m2
  if (t.bits() == 8 && t.exponent_bits() == 4) return 2;  // f8e4m3 "fn"
  return 0;
}

}  // namespace

std::string Emitter::decode_f32(DataType t, const std::string& code) {
  switch (t.kind()) {
    case isa::TypeKind::Bool:
    case isa::TypeKind::UnsignedInt: return fmt::format("(float)({})", code);
    case isa::TypeKind::SignedInt: return fmt::format("(float)ab::sext<{}>({})", t.bits(), code);
    case isa::TypeKind::Float:
      if (t == DataType::f32()) return fmt::format("ab::as_float({})", code);
      if (t == DataType::f16()) return fmt::format("ab::f16_to_f32({})", code);
      if (t == DataType::bf16()) return fmt::format("ab::bf16_to_f32({})", code);
      return fmt::format("ab::small_float_to_f32<{}, {}, {}>({})", t.exponent_bits(), t.mantissa_bits(), special_of(t),
                         code);
  }
  return "";
}

std::string Emitter::encode_f32(DataType t, const std::string& v) {
  switch (t.kind()) {
    case isa::TypeKind::Bool: return fmt::format("(({}) != 0.0f ? 1u : 0u)", v);
    case isa::TypeKind::SignedInt: return fmt::format("ab::f32_to_int<{}, true>({})", t.bits(), v);
    case isa::TypeKind::UnsignedInt: return fmt::format("ab::f32_to_int<{}, false>({})", t.bits(), v);
    case isa::TypeKind::Float:
      if (t == DataType::f32()) return fmt::format("ab::as_u32({})", v);
      if (t == DataType::f16()) return fmt::format("ab::f32_to_f16({})", v);
      if (t == DataType::bf16()) return fmt::format("ab::f32_to_bf16({})", v);
      return fmt::format("ab::f32_to_small_float<{}, {}, {}>({})", t.exponent_bits(), t.mantissa_bits(), special_of(t), v);
  }
  return "";
}

void Emitter::elementwise(const Instruction& inst) {
  using isa::Opcode;
  const TensorType& t = type(inst.result);
  const std::string dst = value(inst.result);
  declare_tile(inst.result, t);
  const int bits = t.dtype.bits();
  std::vector<std::string> codes;
  for (const auto& op : inst.operands)
    codes.push_back(fmt::format("ab::get<{}>({}, s)", type(op.name).dtype.bits(), value(op.name)));
  std::string result;
  const DataType dt = t.dtype;
  if (inst.opcode == Opcode::Where) {
    result = fmt::format("{} ? {} : {}", codes[0], codes[1], codes[2]);
  } else if (dt.is_integer()) {
    std::vector<std::string> v;
    for (const auto& c : codes)
      v.push_back(dt.is_signed() ? fmt::format("ab::sext<{}>({})", bits, c) : fmt::format("(ab::i64)({})", c));
    std::string r;
    switch (inst.opcode) {
      case Opcode::Neg: r = fmt::format("-{}", v[0]); break;
      case Opcode::Abs: r = fmt::format("({0} < 0 ? -{0} : {0})", v[0]); break;
      case Opcode::Add: r = fmt::format("{} + {}", v[0], v[1]); break;
      case Opcode::Sub: r = fmt::format("{} - {}", v[0], v[1]); break;
      case Opcode::Mul: r = fmt::format("(ab::i64)((ab::u64){} * (ab::u64){})", v[0], v[1]); break;
      case Opcode::Div: r = fmt::format("({1} == 0 ? 0 : {0} / {1})", v[0], v[1]); break;
      case Opcode::Min: r = fmt::format("ab::min({}, {})", v[0], v[1]); break;
      case Opcode::Max: r = fmt::format("ab::max({}, {})", v[0], v[1]); break;
      case Opcode::Fma: r = fmt::format("(ab::i64)((ab::u64){} * (ab::u64){}) + {}", v[0], v[1], v[2]); break;
      default: break;
    }
    result = fmt::format("ab::wrap<{}>({})", bits, r);
  } else if (inst.opcode == Opcode::Neg || inst.opcode == Opcode::Abs) {
    // Sign-bit operations are exact on every float format.
    result = inst.opcode == Opcode::Neg ? fmt::format("{} ^ 0x{:x}u", codes[0], 1u << (bits - 1))
                                        : fmt::format("{} & 0x{:x}u", codes[0], (1u << (bits - 1)) - 1u);
  } else if ((dt == DataType::f16() || dt == DataType::bf16()) && t.layout->local_size() % 2 == 0 &&
             (inst.opcode == Opcode::Add || inst.opcode == Opcode::Sub || inst.opcode == Opcode::Mul ||
              inst.opcode == Opcode::Fma) &&
             std::all_of(inst.operands.begin(), inst.operands.end(), [&](const auto& op) { return type(op.name).dtype == dt; })) {
    // Two halves per instruction (HADD2/HFMA2 class), word by word: operands share the result's layout.
    const bool half = dt == DataType::f16();
    const char* fn = inst.opcode == Opcode::Add   ? (half ? "hadd2" : "badd2")
                     : inst.opcode == Opcode::Sub ? (half ? "hsub2" : "bsub2")
                     : inst.opcode == Opcode::Mul ? (half ? "hmul2" : "bmul2")
                                                  : (half ? "hfma2" : "bfma2");
    std::vector<std::string> words;
    for (const auto& op : inst.operands) words.push_back(fmt::format("{}[w]", value(op.name)));
    line("#pragma unroll");
    line("for (int w = 0; w < {}; ++w) {}[w] = ab::{}({});", t.layout->local_size() / 2, dst, fn, fmt::join(words, ", "));
    return;
  } else if (inst.opcode == Opcode::Fma && (dt == DataType::f16() || dt == DataType::bf16())) {
    result = fmt::format("ab::fma_{}({}, {}, {})", dt.name(), codes[0], codes[1], codes[2]);
  } else {
    std::vector<std::string> f;
    for (const auto& c : codes) f.push_back(decode_f32(dt, c));
    std::string r;
    switch (inst.opcode) {
      case Opcode::Add: r = fmt::format("ab::fadd({}, {})", f[0], f[1]); break;
      case Opcode::Sub: r = fmt::format("ab::fsub({}, {})", f[0], f[1]); break;
      case Opcode::Mul: r = fmt::format("ab::fmul({}, {})", f[0], f[1]); break;
      case Opcode::Div: r = fmt::format("ab::fdiv({}, {})", f[0], f[1]); break;
      case Opcode::Min: r = fmt::format("ab::fmin_({}, {})", f[0], f[1]); break;
      case Opcode::Max: r = fmt::format("ab::fmax_({}, {})", f[0], f[1]); break;
      case Opcode::Fma: r = fmt::format("ab::ffma({}, {}, {})", f[0], f[1], f[2]); break;
      default: break;
    }
    result = encode_f32(dt, r);
  }
  line("#pragma unroll");
  line("for (int s = 0; s < {}; ++s) ab::set<{}>({}, s, {});", t.layout->local_size(), bits, dst, result);
}

void Emitter::reduce(const Instruction& inst) {
  const TensorType& in = type(inst.operands[0].name);
  const TensorType& out = type(inst.result);
  const std::string src = value(inst.operands[0].name), dst = value(inst.result);
  const RegisterLayout& l = *in.layout;
  const auto& dims = *inst.attrs.dims;
  const std::string& op = *inst.attrs.op;
  const DataType dt = in.dtype;
  const bool integer = dt.is_integer() || dt.is_bool();
  const std::int64_t threads = program_.threads();
  // Threads holding parts of one result: the spatial modes of the reduced dimensions. Power-of-two modes
  // inside a warp combine by butterfly shuffles; every other mode through shared memory.
  std::vector<std::int64_t> masks;
  std::vector<std::pair<std::int64_t, std::int64_t>> exchanged;  // (thread stride, size)
  {
    std::int64_t stride = 1;
    for (auto it = l.spatial().rbegin(); it != l.spatial().rend(); ++it) {
      const auto& m = l.modes()[*it];
      if (m.dim >= 0 && std::find(dims.begin(), dims.end(), m.dim) != dims.end()) {
        const bool power_of_two = (m.size & (m.size - 1)) == 0;
        if (power_of_two && stride < 32) {  // the part inside a warp by shuffles, the rest across warps
          const std::int64_t inside = std::min(m.size, 32 / stride);
          for (std::int64_t b = stride; b < stride * inside; b *= 2) masks.push_back(b);
          if (m.size > inside) exchanged.emplace_back(stride * inside, m.size / inside);
        } else {
          exchanged.emplace_back(stride, m.size);
        }
      }
      stride *= m.size;
    }
  }
  declare_tile(inst.result, out);
  const std::string acc_type = integer ? "ab::i64" : "float";
  auto combine = [&](const std::string& a, const std::string& b) {
    if (op == "add") return integer ? fmt::format("{} + {}", a, b) : fmt::format("ab::fadd({}, {})", a, b);
    if (op == "max") return integer ? fmt::format("ab::max({}, {})", a, b) : fmt::format("ab::fmax_({}, {})", a, b);
    return integer ? fmt::format("ab::min({}, {})", a, b) : fmt::format("ab::fmin_({}, {})", a, b);
  };
  auto element = [&](std::int64_t s) {
    const std::string code = fmt::format("ab::get<{}>({}, {})", dt.bits(), src, s);
    if (!integer) return decode_f32(dt, code);
    return dt.is_signed() ? fmt::format("ab::sext<{}>({})", dt.bits(), code) : fmt::format("(ab::i64)({})", code);
  };
  // 32-bit transport of a partial result (integers are at most 32 bits wide).
  auto to_bits = [&](const std::string& v) { return integer ? fmt::format("(ab::u32){}", v) : fmt::format("ab::as_u32({})", v); };
  auto from_bits = [&](const std::string& b) {
    if (!integer) return fmt::format("ab::as_float({})", b);
    return dt.is_signed() ? fmt::format("(ab::i64)(ab::i32)({})", b) : fmt::format("(ab::i64)({})", b);
  };
  // Local part: fold the thread's own slots that land on the same output slot.
  const std::size_t outs = static_cast<std::size_t>(out.layout->local_size());
  std::vector<std::vector<std::int64_t>> groups(outs);
  for (std::int64_t s = 0; s < l.local_size(); ++s) {
    Shape index = l.logical_index(0, s);
    for (int d : dims) index[d] = 0;
    groups[static_cast<std::size_t>(out.layout->map(index).local)].push_back(s);
  }
  line("{{");
  ++indent_;
  for (std::size_t o = 0; o < outs; ++o) {
    std::string acc = element(groups[o][0]);
    for (std::size_t k = 1; k < groups[o].size(); ++k) acc = combine(acc, element(groups[o][k]));
    line("{} acc{} = {};", acc_type, o, acc);
    for (auto mask : masks)
      line("acc{} = {};", o, combine(fmt::format("acc{}", o), from_bits(fmt::format("ab::shfl_xor({}, {})", to_bits(fmt::format("acc{}", o)), mask))));
  }
  if (!exchanged.empty()) {
    // Every thread publishes its partials; each then combines its group's partials in the same order.
    const std::int64_t offset = (typing_.shared.total_bytes + 127) / 128 * 128;
    scratch_bytes_ = std::max(scratch_bytes_, offset + static_cast<std::int64_t>(outs) * threads * 4);
    line("ab::u32* const scratch = (ab::u32*)(ab_smem + {});", offset);
    std::string base = "(ab::i64)tid";
    for (const auto& [stride, size] : exchanged) base += fmt::format(" - (ab::i64)((tid / {}) % {}) * {}", stride, size, stride);
    line("const ab::i64 group = {};", base);
    line("ab::bar_sync();");
    for (std::size_t o = 0; o < outs; ++o) line("scratch[{} + tid] = {};", o * threads, to_bits(fmt::format("acc{}", o)));
    line("ab::bar_sync();");
    std::int64_t members = 1;
    for (const auto& e : exchanged) members *= e.second;
    for (std::size_t o = 0; o < outs; ++o) {
      std::string acc;
      for (std::int64_t k = 0; k < members; ++k) {
        std::int64_t partner = 0, rest = k;
        for (auto it = exchanged.rbegin(); it != exchanged.rend(); ++it) {
          partner += (rest % it->second) * it->first;
          rest /= it->second;
        }
        const std::string part = from_bits(fmt::format("scratch[{} + group + {}]", o * threads, partner));
        acc = acc.empty() ? part : combine(acc, part);
      }
      line("acc{} = {};", o, acc);
    }
    line("ab::bar_sync();  // the scratch space is free again");
  }
  for (std::size_t o = 0; o < outs; ++o) {
    const std::string code = integer ? fmt::format("ab::wrap<{}>(acc{})", dt.bits(), o) : encode_f32(dt, fmt::format("acc{}", o));
    line("ab::set<{}>({}, {}, {});", dt.bits(), dst, o, code);
  }
  --indent_;
  line("}}");
}

std::vector<Emitter::DotStep> Emitter::dot_plan(const Instruction& inst) const {
  const TensorType& c = type(inst.operands[0].name);
  const TensorType& a = type(inst.operands[1].name);
  const TensorType& b = type(inst.operands[2].name);
  const bool int8 = a.dtype.bits() == 8;
  const RegisterLayout atom_a = int8 ? layout::mma_m16n8k32_a() : layout::mma_m16n8k16_a();
  const RegisterLayout atom_b = int8 ? layout::mma_m16n8k32_b() : layout::mma_m16n8k16_b();
  const RegisterLayout atom_c = layout::mma_m16n8k16_c();
  if (!layout::divides(*c.layout, atom_c)) unsupported(inst, "the accumulator's layout is not made of mma C fragments");
  const auto qc = layout::divide(*c.layout, atom_c);
  const std::int64_t tk = atom_a.shape()[1], k_tiles = a.shape[1] / tk;
  // Fragment words each warp uses, (c local, k) -> (a words, b words): operand registers are gathered by
  // fragment, so operands need not be atom-ordered (e.g. a transposed weight tile), only hold whole words
  // of their fragments. The code is the same for every warp.
  std::vector<DotStep> plan;
  for (std::int64_t w = 0; w < qc.num_threads(); ++w) {
    std::size_t n = 0;
    for (std::int64_t lc = 0; lc < qc.local_size(); ++lc) {
      const layout::Shape ij = qc.logical_index(w, lc);
      for (std::int64_t k = 0; k < k_tiles; ++k, ++n) {
        auto wa = layout::fragment_words(*a.layout, atom_a, {ij[0] * 16, k * tk}, w, a.dtype.bits());
        auto wb = layout::fragment_words(*b.layout, atom_b, {k * tk, ij[1] * 8}, w, b.dtype.bits());
        if (!wa || !wb)
          unsupported(inst, fmt::format("a lane does not hold its {} fragment in whole registers the same way on every "
                                        "lane (give the operand an mma layout)", wa ? "b" : "a"));
        DotStep step{lc, k, std::move(*wa), std::move(*wb)};
        if (w == 0)
          plan.push_back(std::move(step));
        else if (!(plan[n] == step))
          unsupported(inst, "the fragments a warp uses depend on the warp (arrange warps through spatial modes "
                            "only, fragments through local modes)");
      }
    }
  }
  return plan;
}

std::vector<std::int64_t> Emitter::correction_pairs(const std::vector<DotStep>& plan) {
  // Accumulator tiles whose steps multiply the same A words at every k, paired in order of appearance.
  std::map<std::vector<std::vector<std::int64_t>>, std::vector<std::int64_t>> by_a;
  std::map<std::int64_t, std::vector<std::vector<std::int64_t>>> a_of;
  for (const DotStep& s : plan) a_of[s.lc].push_back(s.a);
  for (auto& [lc, words] : a_of) by_a[words].push_back(lc);
  std::vector<std::int64_t> partner(a_of.empty() ? 0 : static_cast<std::size_t>(a_of.rbegin()->first + 1), -1);
  for (auto& [words, tiles] : by_a)
    for (std::size_t i = 0; i + 1 < tiles.size(); i += 2) {
      partner[static_cast<std::size_t>(tiles[i])] = tiles[i + 1];
      partner[static_cast<std::size_t>(tiles[i + 1])] = tiles[i];
    }
  return partner;
}

void Emitter::dot(const Instruction& inst) {
  const TensorType& c = type(inst.operands[0].name);
  const TensorType& a = type(inst.operands[1].name);
  const bool int8 = a.dtype.bits() == 8;
  const RegisterLayout atom_c = layout::mma_m16n8k16_c();
  const std::vector<DotStep> plan = dot_plan(inst);
  std::string fn;
  if (int8) fn = a.dtype.is_signed() ? "mma_m16n8k32_s32_s8" : "mma_m16n8k32_s32_u8";
  else if (a.dtype == DataType::bf16()) fn = "mma_m16n8k16_f32_bf16";
  else fn = c.dtype == DataType::f16() ? "mma_m16n8k16_f16_f16" : "mma_m16n8k16_f32_f16";
  const int cw = static_cast<int>(atom_c.local_size() * c.dtype.bits() / 32);
  const std::string cv = value(inst.operands[0].name), av = value(inst.operands[1].name), bv = value(inst.operands[2].name);
  // A pointer into the operand when its words are consecutive, else a gathered copy (registers renamed
  // by the compiler: no instructions).
  int gathered = 0;
  auto operand = [&](const std::string& v, const std::vector<std::int64_t>& words) {
    bool consecutive = true;
    for (std::size_t i = 1; i < words.size(); ++i) consecutive &= words[i] == words[0] + static_cast<std::int64_t>(i);
    if (consecutive) return fmt::format("&{}[{}]", v, words[0]);
    std::vector<std::string> parts;
    for (auto w : words) parts.push_back(fmt::format("{}[{}]", v, w));
    const std::string name = fmt::format("frag{}", gathered++);
    line("const ab::u32 {}[{}] = {{{}}};", name, words.size(), fmt::join(parts, ", "));
    return name;
  };
  // An operand decoded with offsets (find_offset_casts) holds w + o: one more mma with the fragment of -o
  // (constant registers) and the same other operand takes sum(a o) back out, into the accumulator's shadow
  // (an independent chain, added in before any other use of the accumulator). The
  // products are exact and the sums small integers times the activations, so the cancellation costs about
  // one f32 rounding of |a| * o, far below the f16 result's.
  const auto offsets_of = [&](const std::string& name) -> const std::vector<std::uint32_t>* {
    auto it = offsets_.find(name);
    return it == offsets_.end() ? nullptr : &it->second;
  };
  const auto* offsets_a = offsets_of(inst.operands[1].name);
  const auto* offsets_b = offsets_a ? nullptr : offsets_of(inst.operands[2].name);
  const auto pairs_it = shadow_pairs_.find(inst.operands[0].name);
  const auto partner_of = [&](std::int64_t lc) -> std::int64_t {
    if (pairs_it == shadow_pairs_.end() || lc >= static_cast<std::int64_t>(pairs_it->second.size())) return -1;
    return pairs_it->second[static_cast<std::size_t>(lc)];
  };
  const auto zero = [](const std::vector<std::uint32_t>& v) { return std::all_of(v.begin(), v.end(), [](std::uint32_t o) { return o == 0; }); };
  const auto correction = [&](const std::vector<std::uint32_t>& offsets, const std::vector<std::int64_t>& words) {
    std::vector<std::uint32_t> fragment;
    for (auto w : words) fragment.push_back(offsets[static_cast<std::size_t>(w)]);
    return zero(fragment) ? std::string() : constant_fragment(fragment);
  };
  for (const auto& step : plan) {
    line("{{");
    ++indent_;
    const std::string pa = operand(av, step.a), pb = operand(bv, step.b);
    line("ab::{}(&{}[{}], {}, {}, &{}[{}]);", fn, cv, step.lc * cw, pa, pb, cv, step.lc * cw);
    const std::string shadow = cv + "_o";
    if (offsets_a) {
      if (const std::string oa = correction(*offsets_a, step.a); !oa.empty())
        line("ab::{}(&{}[{}], {}, {}, &{}[{}]);", fn, shadow, step.lc * cw, oa, pb, shadow, step.lc * cw);
    } else if (offsets_b && partner_of(step.lc) >= 0) {
      // One mma for both tiles of a pair, at the first's step (correction_pairs).
      const std::int64_t other = partner_of(step.lc);
      if (other > step.lc) {
        const auto it = std::find_if(plan.begin(), plan.end(), [&](const DotStep& s) { return s.lc == other && s.k == step.k; });
        std::vector<std::uint32_t> even, odd;
        for (std::size_t i = 0; i < step.b.size(); ++i) {
          even.push_back((*offsets_b)[static_cast<std::size_t>(step.b[i])]);
          odd.push_back((*offsets_b)[static_cast<std::size_t>(it->b[i])]);
        }
        if (!zero(even) || !zero(odd))
          line("ab::{}(&{}[{}], {}, {}, &{}[{}]);", fn, shadow, step.lc * cw, pa, lane_fragment(even, odd), shadow, step.lc * cw);
      }
    } else if (offsets_b) {
      if (const std::string ob = correction(*offsets_b, step.b); !ob.empty())
        line("ab::{}(&{}[{}], {}, {}, &{}[{}]);", fn, shadow, step.lc * cw, pa, ob, shadow, step.lc * cw);
    }
    --indent_;
    line("}}");
    gathered = 0;
  }
}

}  // namespace anybit::backend_cuda::detail
