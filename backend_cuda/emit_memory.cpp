// Memory instructions: global and shared loads/stores (vectorized where passes::vector_width proves it
// safe) and cp.async tile copies.
#include <algorithm>
#include <functional>
#include <map>
#include <optional>

#include "backend_cuda/emitter.h"
#include "passes/ldmatrix.h"

namespace anybit::backend_cuda::detail {

namespace {

std::vector<Expr> constants(const Shape& s) { return std::vector<Expr>(s.begin(), s.end()); }

// Per-slot-group index expressions: "(i0 + 3)".
std::vector<std::string> indices(const Shape& slot) {
  std::vector<std::string> out;
  for (std::size_t d = 0; d < slot.size(); ++d)
    out.push_back(slot[d] == 0 ? fmt::format("i{}", d) : fmt::format("(i{} + {})", d, slot[d]));
  return out;
}

}  // namespace

// Opens a block with i<d> = offset<d> + thread base<d>: the index of the thread's slot 0 in the memory,
// 32-bit when `narrow` (Emitter::narrow_indices for global views).
static void open_indices(Emitter& e, const RegisterLayout& l, const std::vector<Expr>& offset, bool narrow = false) {
  e.line("{{");
  ++e.indent_;
  const auto base = e.thread_base(l);
  for (std::size_t d = 0; d < offset.size(); ++d) {
    if (narrow) e.line("const int i{} = (int)({}) + (int){};", d, e.expr(offset[d]), base[d]);
    else e.line("const ab::i64 i{} = {} + {};", d, e.expr(offset[d]), base[d]);
  }
}

// The byte offset of element offset `elem` of a `bits`-wide type (whole bytes: no bit offset to overflow).
static std::string byte_offset(const std::string& elem, int bits) {
  return bits % 8 == 0 ? fmt::format("({}) * {}", elem, bits / 8) : fmt::format("({}) * {} / 8", elem, bits);
}

static void close_block(Emitter& e) {
  --e.indent_;
  e.line("}}");
}

static std::string global_element(const std::string& view, const std::vector<std::string>& idx) {
  std::vector<std::string> terms;
  for (std::size_t d = 0; d < idx.size(); ++d) terms.push_back(fmt::format("{} * {}_stride{}", idx[d], view, d));
  return fmt::format("{}", fmt::join(terms, " + "));
}

// The bounds test of a masked access to global view `view` (of type `g`) at element indices `idx`, for a
// tile of `shape` at `origin`: each index is the origin plus a coordinate in [0, shape). Tests the range
// analysis proves are left out (a group's scale row is never negative, a broadcast dimension's coordinate
// is inside its constant extent), which leaves ptxas fewer predicates to recombine every iteration, and so
// are the dimensions the access does not mask.
static std::string in_bounds(const Emitter& e, const isa::Attributes& a, const std::string& view, const TensorType& g,
                             const std::vector<Expr>& origin, const Shape& shape, const std::vector<std::string>& idx) {
  std::vector<std::string> terms;
  for (std::size_t d = 0; d < idx.size(); ++d) {
    if (!isa::masked_along(a, static_cast<int>(d))) continue;
    const isa::Interval at = e.range(origin[d]), extent = e.range(g.global_shape[d]);
    const bool top_known = at.hi < INT64_MAX - shape[d];
    if (!at.non_negative()) terms.push_back(fmt::format("{} >= 0", idx[d]));
    if (!(top_known && at.hi + shape[d] - 1 < extent.lo)) terms.push_back(fmt::format("{} < {}_extent{}", idx[d], view, d));
  }
  return terms.empty() ? std::string("true") : fmt::format("{}", fmt::join(terms, " && "));
}

void Emitter::load_global(const Instruction& inst) {
  const TensorType& t = *inst.type;
  const TensorType& g = type(inst.operands[0].name);
  const std::string view = value(inst.operands[0].name), dst = value(inst.result);
  const int bits = t.dtype.bits();
  declare_tile(inst.result, t);
  passes::AccessShape access{bits, inst.operands[0].index, g.global_strides,
                             inst.attrs.masked ? g.global_shape : std::vector<Expr>{}};
  const int w = passes::vector_width(*t.layout, access, div_);
  // Broadcast dimensions (constant stride 0, always in bounds): slots that differ only there read the same
  // memory, so they copy the registers of the first such slot instead of loading again (scales and zero
  // points broadcast over K, bias over rows).
  std::vector<bool> broadcast(static_cast<std::size_t>(t.rank()), false);
  for (int d = 0; d < t.rank(); ++d) {
    const Expr& stride = g.global_strides[d];
    const Expr& offset = inst.operands[0].index[d];
    const bool in_bounds = !isa::masked_along(inst.attrs, d) ||
                           (g.global_shape[d].is_constant() && offset.is_constant() && offset.constant() >= 0 &&
                            offset.constant() + t.shape[d] <= g.global_shape[d].constant());
    broadcast[d] = stride.is_constant() && stride.constant() == 0 && in_bounds;
  }
  std::map<layout::Shape, std::int64_t> loaded;  // slot offset without broadcast coordinates -> first slot
  open_indices(*this, *t.layout, inst.operands[0].index, narrow_indices(inst.operands[0].name, inst.operands[0].index, t.shape));
  // Whole-byte elements: one pointer to the thread's slot 0, and each slot at a distance that is a constant
  // where the strides it steps along are (an immediate offset of the load): masked loads had each computed
  // their own 64-bit address under their own predicate (group scales: three instructions a load).
  const bool from_slot0 = bits % 8 == 0;
  if (from_slot0) line("const ab::u8* const p = {} + {};", view, byte_offset(global_element(view, indices(Shape(t.shape.size(), 0))), bits));
  const auto address = [&](const Shape& slot, const std::vector<std::string>& idx) {
    if (!from_slot0) return fmt::format("{} + {}", view, byte_offset(global_element(view, idx), bits));
    std::int64_t constant = 0;
    std::vector<std::string> terms;
    for (std::size_t d = 0; d < slot.size(); ++d) {
      if (slot[d] == 0) continue;
      const Expr& stride = g.global_strides[d];
      if (stride.is_constant()) constant += slot[d] * stride.constant();
      else terms.push_back(fmt::format("{} * {}_stride{}", slot[d], view, d));
    }
    if (constant != 0 || terms.empty()) terms.push_back(fmt::format("{}", constant));
    return fmt::format("p + ({}) * {}", fmt::join(terms, " + "), bits / 8);
  };
  for (std::int64_t s = 0; s < t.layout->local_size(); s += w) {
    layout::Shape key = passes::slot_offset(*t.layout, s);
    for (int d = 0; d < t.rank(); ++d)
      if (broadcast[d]) key[d] = 0;
    if (auto [it, fresh] = loaded.emplace(key, s); !fresh) {
      if (w * bits % 32 == 0)
        line("for (int w = 0; w < {}; ++w) {}[{} + w] = {}[{} + w];", w * bits / 32, dst, s * bits / 32, dst, it->second * bits / 32);
      else
        line("for (int j = 0; j < {}; ++j) ab::set<{}>({}, {} + j, ab::get<{}>({}, {} + j));", w, bits, dst, s, bits, dst, it->second);
      continue;
    }
    const Shape slot = passes::slot_offset(*t.layout, s);
    const auto idx = indices(slot);
    const std::string elem = global_element(view, idx);
    const std::string cond = inst.attrs.masked ? in_bounds(*this, inst.attrs, view, g, inst.operands[0].index, t.shape, idx) : "";
    const int group_bits = w * bits;
    if (group_bits % 32 == 0) {
      const std::string load = fmt::format("ab::ld_global<{}>(&{}[{}], {});", group_bits / 8, dst, s * bits / 32, address(slot, idx));
      if (cond.empty()) {
        line("{}", load);
      } else {
        line("if ({}) {} else {{ for (int w = 0; w < {}; ++w) {}[{} + w] = 0u; }}", cond, load, group_bits / 32, dst,
             s * bits / 32);
      }
    } else if (group_bits % 8 == 0) {
      line("{{ ab::u32 v = 0u; {}ab::ld_global<{}>(&v, {}); ab::set<{}>({}, {}, v); }}",
           cond.empty() ? "" : "if (" + cond + ") ", group_bits / 8, address(slot, idx), group_bits, dst, s / w);
    } else {
      line("ab::set<{}>({}, {}, {}ab::load_bits({}, ({}) * {}, {}){});", bits, dst, s,
           cond.empty() ? "" : "(" + cond + ") ? ", view, elem, bits, bits, cond.empty() ? "" : " : 0u");
    }
  }
  close_block(*this);
}

void Emitter::store_global(const Instruction& inst) {
  const TensorType& t = type(inst.operands[0].name);
  const TensorType& g = type(inst.operands[1].name);
  const std::string src = value(inst.operands[0].name), view = value(inst.operands[1].name);
  const int bits = t.dtype.bits();
  passes::AccessShape access{bits, inst.operands[1].index, g.global_strides,
                             inst.attrs.masked ? g.global_shape : std::vector<Expr>{}};
  const int w = passes::vector_width(*t.layout, access, div_);
  const std::string replica = first_replica(*t.layout);
  if (!replica.empty()) line("if ({})  // one replica stores", replica);
  open_indices(*this, *t.layout, inst.operands[1].index, narrow_indices(inst.operands[1].name, inst.operands[1].index, t.shape));
  for (std::int64_t s = 0; s < t.layout->local_size(); s += w) {
    const auto idx = indices(passes::slot_offset(*t.layout, s));
    const std::string elem = global_element(view, idx);
    const std::string guard =
        inst.attrs.masked ? "if (" + in_bounds(*this, inst.attrs, view, g, inst.operands[1].index, t.shape, idx) + ") " : "";
    const int group_bits = w * bits;
    if (group_bits % 32 == 0) {
      line("{}ab::st_global<{}>({} + {}, &{}[{}]);", guard, group_bits / 8, view, byte_offset(elem, bits), src,
           s * bits / 32);
    } else if (group_bits % 8 == 0) {
      line("{}{{ const ab::u32 v = ab::get<{}>({}, {}); ab::st_global<{}>({} + {}, &v); }}", guard,
           group_bits, src, s / w, group_bits / 8, view, byte_offset(elem, bits));
    } else {
      line("{}ab::store_bits({}, ({}) * {}, {}, ab::get<{}>({}, {}));", guard, view, elem, bits, bits, bits, src, s);
    }
  }
  close_block(*this);
}

// Element offset of an index in a shared tile. The swizzle only reads and writes bits below
// 2^(bits + base + shift), so terms whose stride is a multiple of that period (a pipeline stage, a buffer
// of a double-buffered tile) add after it: the swizzled part depends on the thread alone and is computed
// once, outside the loops. Offsets are 32-bit: every in-bounds shared address is below 2^31.
struct SharedOffset {
  std::string swizzled;              // the thread's part, under the swizzle (or all of it without one)
  std::vector<std::string> outside;  // "(int)i * stride" terms added after the swizzle
};
static SharedOffset split_shared_offset(const TensorType& s, const std::vector<std::string>& idx) {
  const auto& z = s.shared->swizzle();
  const std::int64_t period = std::int64_t{1} << (z.bits + z.base + z.shift);
  std::vector<std::string> inside;
  SharedOffset o;
  for (std::size_t d = 0; d < idx.size(); ++d) {
    const std::int64_t stride = s.shared->strides()[d];
    (!z.identity() && stride % period == 0 ? o.outside : inside).push_back(fmt::format("(int){} * {}", idx[d], stride));
  }
  const std::string linear = inside.empty() ? "0" : fmt::format("{}", fmt::join(inside, " + "));
  o.swizzled = z.identity() ? linear : fmt::format("ab::swizzle<{}, {}, {}>({})", z.bits, z.base, z.shift, linear);
  return o;
}
static std::string shared_offset(const TensorType& s, const std::vector<std::string>& idx) {
  const SharedOffset o = split_shared_offset(s, idx);
  return o.outside.empty() ? o.swizzled : fmt::format("{} + {}", o.swizzled, fmt::join(o.outside, " + "));
}
// The byte address of an index in a shared tile of `bits`-bit elements. The swizzled part
// and the terms after it are scaled to bytes apart, so that the per-thread part stays a loop invariant and
// a stage's term adds to it: "(swizzle(...) + stage * 1024) * 2" had cost ptxas an OR and a shift per
// ldmatrix every iteration; "swizzle(...) * 2 + stage * 2048" is one add. Scaling the terms apart is exact
// for sub-byte elements too: a term after the swizzle is a multiple of its period, at least 8 elements.
static std::string shared_address(const std::string& base, const TensorType& s, const std::vector<std::string>& idx, int bits) {
  const SharedOffset o = split_shared_offset(s, idx);
  std::string a = fmt::format("{} + ({}) * {} / 8", base, o.swizzled, bits);
  for (const auto& term : o.outside) a += fmt::format(" + ({}) * {} / 8", term, bits);
  return a;
}

static passes::AccessShape shared_access(const TensorType& s, int bits, const std::vector<Expr>& offset) {
  passes::AccessShape a{bits, offset, constants(s.shared->strides()), {}};
  if (!s.shared->swizzle().identity()) a.contiguous_limit = std::int64_t{1} << s.shared->swizzle().base;
  return a;
}

void Emitter::load_shared(const Instruction& inst) {
  const TensorType& t = *inst.type;
  const TensorType& sh = type(inst.operands[0].name);
  const std::string base = value(inst.operands[0].name), dst = value(inst.result);
  const int bits = t.dtype.bits();
  declare_tile(inst.result, t);
  if (const auto plan = passes::plan_ldmatrix(*t.layout, t.dtype, *sh.shared, inst.operands[0].index, div_)) {
    // Lane L gives the address of row L % 8 of block L / 8 of each instruction's blocks.
    line("{{");
    ++indent_;
    const auto warp = thread_base(*t.layout, "(tid & ~31u)");
    const auto origin0 = t.layout->logical_index(0, 0);
    const int rank = t.rank(), r = rank - 2;
    for (int d = 0; d < 2; ++d)
      line("const int w{} = (int){} + (int){} - {};", d, expr(inst.operands[0].index[r + d]), warp[r + d], origin0[r + d]);
    std::vector<std::string> leading;  // size-1 leading dimensions: just the tile offset
    for (int d = 0; d < r; ++d) leading.push_back(fmt::format("({})", expr(inst.operands[0].index[d])));
    line("const int lane = tid % 32;");
    std::size_t q0 = 0;
    for (int count : plan->counts) {
      // The block origin for this lane's block, as selects (an indexed array would live in local memory).
      std::string row = std::to_string(plan->origins[q0 + count - 1][0]), col = std::to_string(plan->origins[q0 + count - 1][1]);
      for (int m = count - 2; m >= 0; --m) {
        row = fmt::format("m == {} ? {} : {}", m, plan->origins[q0 + m][0], row);
        col = fmt::format("m == {} ? {} : {}", m, plan->origins[q0 + m][1], col);
      }
      line("{{");
      ++indent_;
      line("const int m = (lane / 8) % {};", count);
      line("const int row = {}, col = {};", row, col);
      std::vector<std::string> idx = leading;
      idx.push_back("(w0 + row + lane % 8)");
      idx.push_back("(w1 + col)");
      line("ab::ldmatrix<{}, {}>(&{}[{}], {});", count, plan->trans ? "true" : "false", dst, q0, shared_address(base, sh, idx, 16));
      --indent_;
      line("}}");
      q0 += static_cast<std::size_t>(count);
    }
    --indent_;
    line("}}");
    return;
  }
  const int w = passes::vector_width(*t.layout, shared_access(sh, bits, inst.operands[0].index), div_);
  open_indices(*this, *t.layout, inst.operands[0].index);
  for (std::int64_t s = 0; s < t.layout->local_size(); s += w) {
    const auto idx = indices(passes::slot_offset(*t.layout, s));
    const int group_bits = w * bits;
    if (group_bits % 32 == 0)
      line("ab::ld_shared<{}>(&{}[{}], {});", group_bits / 8, dst, s * bits / 32, shared_address(base, sh, idx, bits));
    else if (group_bits % 8 == 0)
      line("{{ ab::u32 v; ab::ld_shared<{}>(&v, {}); ab::set<{}>({}, {}, v); }}", group_bits / 8,
           shared_address(base, sh, idx, bits), group_bits, dst, s / w);
    else
      line("ab::set<{}>({}, {}, ab::load_bits({}, ({}) * {}, {}));", bits, dst, s, base, shared_offset(sh, idx), bits, bits);
  }
  close_block(*this);
}

void Emitter::store_shared(const Instruction& inst) {
  const TensorType& t = type(inst.operands[0].name);
  const TensorType& sh = type(inst.operands[1].name);
  const std::string src = value(inst.operands[0].name), base = value(inst.operands[1].name);
  const int bits = t.dtype.bits();
  const int w = passes::vector_width(*t.layout, shared_access(sh, bits, inst.operands[1].index), div_);
  const std::string replica = first_replica(*t.layout);
  if (!replica.empty()) line("if ({})  // one replica stores", replica);
  open_indices(*this, *t.layout, inst.operands[1].index);
  for (std::int64_t s = 0; s < t.layout->local_size(); s += w) {
    const auto idx = indices(passes::slot_offset(*t.layout, s));
    const int group_bits = w * bits;
    if (group_bits % 32 == 0)
      line("ab::st_shared<{}>({}, &{}[{}]);", group_bits / 8, shared_address(base, sh, idx, bits), src, s * bits / 32);
    else if (group_bits % 8 == 0)
      line("{{ const ab::u32 v = ab::get<{}>({}, {}); ab::st_shared<{}>({}, &v); }}", group_bits, src, s / w, group_bits / 8,
           shared_address(base, sh, idx, bits));
    else
      line("ab::store_bits({}, ({}) * {}, {}, ab::get<{}>({}, {}));", base, shared_offset(sh, idx), bits, bits, bits, src, s);
  }
  close_block(*this);
}

void Emitter::copy_async(const Instruction& inst) {
  const TensorType& sh = type(inst.operands[0].name);
  const TensorType& g = type(inst.operands[1].name);
  const std::string sbase = value(inst.operands[0].name), view = value(inst.operands[1].name);
  const int bits = sh.dtype.bits();
  Shape shape;
  for (const Expr& e : *inst.attrs.shape) shape.push_back(e.constant());
  const int rank = static_cast<int>(shape.size()), last = rank - 1;
  const auto& soff = inst.operands[0].index;
  const auto& goff = inst.operands[1].index;
  std::int64_t total = 1;
  for (auto s : shape) total *= s;
  // The widest chunk (16, 8 or 4 bytes) that both sides keep contiguous and aligned.
  int chunk_bytes = 0;
  std::int64_t chunk = 1;
  for (int bytes : {16, 8, 4}) {
    if ((bytes * 8) % bits != 0) continue;
    const std::int64_t c = bytes * 8 / bits;
    bool ok = shape[last] % c == 0 && g.global_strides[last].is_constant() && g.global_strides[last].constant() == 1 &&
              sh.shared->strides()[last] == 1 && div_.of(goff[last]) % c == 0 && div_.of(soff[last]) % c == 0 &&
              (div_.of(g.global_shape[last]) * bits) % 8 == 0;
    for (int d = 0; ok && d < last; ++d)
      ok = div_.of(g.global_strides[d]) % c == 0 && sh.shared->strides()[d] % c == 0;
    if (ok && !sh.shared->swizzle().identity()) ok = (std::int64_t{1} << sh.shared->swizzle().base) >= c;
    if (ok) {
      chunk_bytes = bytes;
      chunk = c;
      break;
    }
  }
  const std::int64_t threads = program_.threads();
  std::vector<std::string> idx(rank);
  for (int d = 0; d < rank; ++d) idx[d] = fmt::format("c{}", d);
  line("{{");
  ++indent_;
  if (chunk_bytes == 0) {
    fallbacks_.push_back(fmt::format("{}: copy_async of {} elements: per-element synchronous copy (no 4-byte "
                                     "aligned chunks provable)",
                                     inst.location, sh.dtype.name()));
  }
  // Chunk q goes to thread q % threads; a fixed trip count lets the loop unroll fully.
  const std::int64_t units = total / chunk, rounds = (units + threads - 1) / threads;
  // Chunk q's coordinates: row-major in the tile, the last dimension counting whole chunks. Dimension d's
  // is (q / below[d]) % extent[d] (times the chunk in the last).
  std::vector<std::int64_t> below(static_cast<std::size_t>(rank)), extents(static_cast<std::size_t>(rank));
  for (std::int64_t d = last, stride = 1; d >= 0; --d) {
    extents[d] = d == last ? shape[d] / chunk : shape[d];
    below[d] = stride;
    stride *= extents[d];
  }
  const auto coordinates = [&](std::int64_t q) {
    std::vector<std::int64_t> c(static_cast<std::size_t>(rank));
    for (int d = 0; d < rank; ++d) c[d] = (q / below[d]) % extents[d] * (d == last ? chunk : 1);
    return c;
  };
  const auto coordinate_text = [&](int d, const char* q) {
    return fmt::format("({} / {}) % {}{}", q, below[d], extents[d], d == last && chunk > 1 ? fmt::format(" * {}", chunk) : "");
  };
  // The step, in elements, by which an offset of the chunk coordinates (nullopt: not a constant) moves
  // from round 0 to round r, r steps, for every thread; nullopt where it does not.
  using Offset = std::function<std::optional<std::int64_t>(const std::vector<std::int64_t>&)>;
  const auto constant_step = [&](const Offset& offset) -> std::optional<std::int64_t> {
    const auto first = offset(coordinates(threads)), base = offset(coordinates(0));
    if (!first || !base) return std::nullopt;
    const std::int64_t step = *first - *base;
    for (std::int64_t t = 0; t < threads; ++t) {
      const auto at0 = offset(coordinates(t));
      for (std::int64_t r = 1; r < rounds && t + r * threads < units; ++r) {
        const auto at = offset(coordinates(t + r * threads));
        if (!at0 || !at || *at - *at0 != r * step) return std::nullopt;
      }
    }
    return step;
  };
  // Unmasked copies whose global offset moves by r * step elements from round 0 to round r, for every
  // thread, along constant strides: the rounds address from one pointer at constant distances (immediate
  // offsets of one 64-bit address, where each round had built its own).
  bool stepped = false;  // and by how many elements a round
  std::int64_t step = 0;
  if (!inst.attrs.masked && chunk_bytes > 0 && rounds > 1) {
    const auto global = constant_step([&](const std::vector<std::int64_t>& c) -> std::optional<std::int64_t> {
      std::int64_t o = 0;
      for (int d = 0; d < rank; ++d) {
        if (c[d] == 0) continue;
        if (!g.global_strides[d].is_constant()) return std::nullopt;
        o += c[d] * g.global_strides[d].constant();
      }
      return o;
    });
    stepped = global.has_value();
    step = global.value_or(0);
  }
  // The same on the shared side, for unswizzled tiles (offsets linear in the coordinates): a round's
  // destination is the thread's round-0 offset plus r whole steps, and the tile's own offset (a pipeline
  // stage) is one term of it (ptxas had folded stage * extent + chunk into one multiply-add and shift per
  // round: 7-bit weights at M = 16 on sm_80, 8 instructions an iteration for 4 rounds).
  bool shared_stepped = false;
  std::int64_t shared_step = 0;
  if (chunk_bytes > 0 && rounds > 1 && sh.shared->swizzle().identity()) {
    const auto shared = constant_step([&](const std::vector<std::int64_t>& c) -> std::optional<std::int64_t> {
      std::int64_t o = 0;
      for (int d = 0; d < rank; ++d) o += c[d] * sh.shared->strides()[d];
      return o;
    });
    shared_stepped = shared && *shared * bits % 8 == 0;
    shared_step = shared.value_or(0);
  }
  line("#pragma unroll");
  line("for (int r = 0; r < {}; ++r) {{", rounds);
  ++indent_;
  line("const int q = tid + r * {};", threads);
  // Only the last round can pass the end (q < (rounds - 1) threads < units before it): tested there alone,
  // the earlier rounds carry no compare and branch (ptxas does not know tid < threads).
  if (units % threads != 0) line("if (r == {} && q >= {}) break;", rounds - 1, units);
  for (int d = last; d >= 0; --d) line("const int c{} = {};", d, coordinate_text(d, "q"));
  // Global indices in 32 bits when the view's offsets fit, and so do these indices.
  const bool narrow = narrow_indices(inst.operands[1].name, goff, shape);
  std::vector<std::string> gidx(rank), sidx(rank);
  for (int d = 0; d < rank; ++d) {
    gidx[d] = narrow ? fmt::format("((int)({}) + c{})", expr(goff[d]), d) : fmt::format("({} + c{})", expr(goff[d]), d);
    sidx[d] = fmt::format("({} + c{})", expr(soff[d]), d);
  }
  if (shared_stepped) {
    std::vector<std::string> tile, thread;
    for (int d = 0; d < rank; ++d) {
      const std::int64_t stride = sh.shared->strides()[d];
      tile.push_back(fmt::format("(int)({}) * {}", expr(soff[d]), stride));
      thread.push_back(fmt::format("(int)({}) * {}", coordinate_text(d, "tid"), stride));
    }
    line("ab::u8* const dst = {} + ({}) * {} / 8 + ({}) * {} / 8 + r * {};", sbase, fmt::join(tile, " + "), bits,
         fmt::join(thread, " + "), bits, shared_step * bits / 8);
  } else {
    line("ab::u8* const dst = {};", shared_address(sbase, sh, sidx, bits));
  }
  const std::string from = byte_offset(global_element(view, gidx), bits);
  if (!inst.attrs.masked) {  // every element inside the view (the interpreter checks): no bounds tests
    if (chunk_bytes > 0 && stepped) {
      // Round 0's offset (the coordinates of chunk tid) plus r whole steps, in bytes.
      std::vector<std::string> gidx0(rank);
      for (int d = 0; d < rank; ++d) {
        const std::string c = fmt::format("(int)({})", coordinate_text(d, "tid"));
        gidx0[d] = narrow ? fmt::format("((int)({}) + {})", expr(goff[d]), c) : fmt::format("({} + {})", expr(goff[d]), c);
      }
      line("ab::cp_async<{}>(dst, {} + {}({}) + r * {}, {});", chunk_bytes, view, narrow ? "(ab::u32)" : "",
           byte_offset(global_element(view, gidx0), bits), step * bits / 8, chunk_bytes);
    } else if (chunk_bytes > 0) {
      line("ab::cp_async<{}>(dst, {} + {}({}), {});", chunk_bytes, view, narrow ? "(ab::u32)" : "", from, chunk_bytes);
    } else if (bits % 8 == 0) {
      line("ab::u32 v = 0u;");
      line("ab::ld_global<{}>(&v, {} + {});", bits / 8, view, from);
      line("ab::st_shared<{}>(dst, &v);", bits / 8);
    } else {
      line("ab::store_bits({}, ({}) * {}, {}, ab::load_bits({}, ({}) * {}, {}));", sbase, shared_offset(sh, sidx), bits, bits,
           view, global_element(view, gidx), bits, bits);
    }
  } else {
    std::vector<std::string> rows_in;
    for (int d = 0; d < last; ++d)
      if (isa::masked_along(inst.attrs, d)) rows_in.push_back(fmt::format("{} >= 0 && {} < {}_extent{}", gidx[d], gidx[d], view, d));
    line("const bool rows_in = {};", rows_in.empty() ? "true" : fmt::format("{}", fmt::join(rows_in, " && ")));
    line("const {} col = {};", narrow ? "int" : "ab::i64", gidx[last]);
    if (chunk_bytes > 0 && !isa::masked_along(inst.attrs, last)) {
      // Only rows may lie outside: the test and the offset of the rows are the same every time the copy
      // runs again with another column (loop-invariant), and an excluded row reads nothing from its
      // column of the view's first row.
      std::vector<std::string> row_idx(gidx.begin(), gidx.end() - 1);
      const std::string rows = row_idx.empty() ? std::string("0") : global_element(view, row_idx);
      line("const int valid = rows_in ? {} : 0;", chunk_bytes);
      const std::string from_rows = byte_offset(fmt::format("(rows_in ? {} : 0) + col * {}_stride{}", rows, view, last), bits);
      line("ab::cp_async<{}>(dst, {} + {}({}), valid);", chunk_bytes, view, narrow ? "(ab::u32)" : "", from_rows);
    } else if (chunk_bytes > 0 && div_.of(g.global_shape[last]) % chunk == 0) {
      // The view ends on a chunk boundary: a chunk is wholly inside or wholly outside.
      const std::string nonneg = range(goff[last]).non_negative() ? "" : "col >= 0 && ";
      line("const int valid = rows_in && {}col < {}_extent{} ? {} : 0;", nonneg, view, last, chunk_bytes);
      // A masked chunk reads nothing but still names an address: the view's start. Selecting the offset
      // rather than the pointer is one SEL where a pointer select took four moves and two predicated adds;
      // a 32-bit offset so selected is never negative, and as unsigned it adds without a sign extension.
      line("ab::cp_async<{}>(dst, {} + {}(valid > 0 ? {} : 0), valid);", chunk_bytes, view, narrow ? "(ab::u32)" : "", from);
    } else if (chunk_bytes > 0) {
      // Elements inside the view form a prefix of the chunk: copy those bytes, zero-fill the rest.
      line("const ab::i64 valid = rows_in && col >= 0 ? ab::max(0, ab::min({}, ((ab::i64){}_extent{} - col) * {} / 8)) : 0;",
           chunk_bytes, view, last, bits);
      line("ab::cp_async<{}>(dst, {} + {}(valid > 0 ? {} : 0), (int)valid);", chunk_bytes, view, narrow ? "(ab::u32)" : "", from);
    } else {
      if (isa::masked_along(inst.attrs, last)) line("const bool in = rows_in && col >= 0 && col < {}_extent{};", view, last);
      else line("const bool in = rows_in;");
      if (bits % 8 == 0) {
        line("ab::u32 v = 0u;");
        line("if (in) ab::ld_global<{}>(&v, {} + {});", bits / 8, view, from);
        line("ab::st_shared<{}>(dst, &v);", bits / 8);
      } else {
        line("const ab::u32 v = in ? ab::load_bits({}, ({}) * {}, {}) : 0u;", view, global_element(view, gidx), bits, bits);
        line("ab::store_bits({}, ({}) * {}, {}, v);", sbase, shared_offset(sh, sidx), bits, bits);
      }
    }
  }
  --indent_;
  line("}}");
  close_block(*this);
}

}  // namespace anybit::backend_cuda::detail
