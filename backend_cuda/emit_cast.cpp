// Casts. Every low-bit format (1..8-bit integers, small floats that f16 or bf16 hold exactly) to f16 and
// bf16 goes through a vectorized emitter that produces both halves of a destination register at once:
//   integers:     codes moved to bit 0 of each half (funnel shifts, one lop3 to merge the halves), OR'd
//                 with the magic number (f16 0x6400 = 1024, bf16 0x4300 = 128) whose last-place unit is
//                 1, then one packed subtract of the magic (plus 2^(N-1) for signed codes, whose sign bits
//                 are flipped once per source word so two's complement becomes offset binary);
//                 4-bit codes to f16 take one prmt (the pair's byte into each half), one lop3 and one packed
//                 fma (x1 low, x1/16 high, minus the magic); 8-bit codes to f16 use one prmt with 0x64
//                 bytes; 8-bit codes to bf16 go through f32
//                 (prmt with 0x4B, one subtract each, one cvt.rn.bf16x2); pairs half-split across a word
//                 (1/2/4-bit packings) take one lop3 and one packed fma; 3-bit codes to f16 one prmt
//                 into a table of high bytes. Offset decode (a cast feeding only a dot, see
//                 Emitter::find_offset_casts): the magic stays in (no subtract or fma), half-split pairs
//                 under a magic whose unit sits at the code's bit, negated on the complemented code in
//                 the high half; the cast records each register's offsets for the dot to remove.
//   small floats: codes high-aligned in each half; sign kept, exponent and mantissa shifted right by
//                 (5 - E) for f16 or (8 - E) for bf16 (4-bit pairs half-split across a word: from a word
//                 masked to every other pair, two shifted copies and one lop3, the mask shared by two
//                 pairs: 13 instructions per 8 codes where 15 had been), then one packed multiply by 2^(15 - bias) or
//                 2^(127 - bias); exact for every code, subnormals included (REFERENCE.md). Codes whose
//                 value the destination's exponent field would misread (NaN of f8e4m3; inf/NaN of f8e5m2
//                 in bf16; exponent-31 codes of f6e5m0/f7e5m1, >= 65536, which round to inf in f16) are
//                 patched per half. f6e5m0 and f7e5m1 into f16 at 2^-1 (the matmul's choice) halve the
//                 magnitude in one packed multiply and clamp exponent 31 (inf or NaN there) back to 2^15
//                 (times 1.5 for f7e5m1's mantissa) with one packed min.
// Small floats without inf/NaN to f32: fields shifted into place and one multiply; f32 to f16/bf16: one
// packed cvt per register. A cast that declares its result layout reads each result slot from the source
// slot holding the same element.
// Every other pair converts slot by slot (decode to f32, encode); among low-bit -> f16/bf16 pairs that is
// only f7e6m0, f8e6m1 and f8e7m0 -> f16, whose values f16 cannot hold (they round), and these are listed
// in the kernel's fallbacks.
#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "backend_cuda/emitter.h"

namespace anybit::backend_cuda::detail {

namespace {

std::uint32_t pair(std::uint32_t half) { return half | (half << 16); }

// 32 bits of the source bit stream starting at bit `start` (may be negative: shifted in zeros).
std::string field(const std::string& src, int words, std::int64_t start) {
  if (start < 0) return fmt::format("({}[0] << {})", src, -start);
  const std::int64_t w = start / 32, r = start % 32;
  if (r == 0) return fmt::format("{}[{}]", src, w);
  if (w + 1 >= words) return fmt::format("({}[{}] >> {})", src, w, r);
  return fmt::format("ab::funnel_r({}[{}], {}[{}], {})", src, w, src, w + 1, r);
}

// f6e5m0 and f7e5m1 (E = 5, at most one mantissa bit, no inf) into f16 at 2^-1: their values (2^-14..2^16,
// 2^-15..1.5 * 2^16) halve to f16 values, and the vector path decodes them with one packed multiply and one
// clamp (Emitter::vector_cast).
bool halves_e5(DataType from, DataType to, int exp) {
  return to == DataType::f16() && from.is_float() && from.exponent_bits() == 5 && from.mantissa_bits() <= 1 &&
         !from.has_inf() && !from.has_nan() && exp == -1;
}

bool vector_cast_supported(DataType from, DataType to) {
  if (!(to == DataType::f16() || to == DataType::bf16())) return false;
  if (from.bits() > 8 || from.is_bool()) return false;
  if (from.is_integer()) return true;
  // Small floats: the destination must hold every value exactly (f16: E <= 5; bf16: always).
  return to == DataType::bf16() || from.exponent_bits() <= 5;
}

}  // namespace

void Emitter::cast(const Instruction& inst) {
  const TensorType& from = type(inst.operands[0].name);
  const TensorType& to = type(inst.result);
  const std::int64_t n = to.layout->local_size();
  // Result slot s converts source slot source_slot[s]: the identity, or the declared reordering, which
  // must be the same in every thread to be a fixed register selection.
  std::vector<std::int64_t> source_slot(static_cast<std::size_t>(n));
  for (std::int64_t s = 0; s < n; ++s) source_slot[s] = s;
  if (inst.type) {
    for (std::int64_t t = 0; t < to.layout->num_threads(); ++t)
      for (std::int64_t s = 0; s < n; ++s) {
        const std::int64_t from_slot = from.layout->map(to.layout->logical_index(t, s)).local;
        if (t == 0) source_slot[s] = from_slot;
        else if (source_slot[s] != from_slot)
          unsupported(inst, fmt::format("the slot reordering differs between threads 0 and {}", t));
      }
  }
  // exp=k (an exact rescale, checked by the type rule): small floats fold 2^k into the power of two their
  // exponent bias needs anyway, while it stays a normal number of the arithmetic type; other casts multiply.
  const int exp = static_cast<int>(inst.attrs.exp.value_or(0));
  const DataType f = from.dtype;
  auto bias_factor_fits = [&](int dst_bias, int min_exp, int max_exp) {
    const int e = dst_bias - (f.is_float() ? f.exponent_bias() : 0) + exp;
    return e >= min_exp && e <= max_exp;
  };
  // (With E = 5 into f16 the all-ones exponent is inf or NaN before the multiply: no rescale there, but
  // for the halving of f6e5m0 and f7e5m1, whose clamp puts the codes past f16 back, see vector_cast.)
  const bool folds = f.is_float() && (to.dtype == DataType::f16() ? (f.exponent_bits() < 5 && bias_factor_fits(15, -14, 15)) ||
                                                                        halves_e5(f, to.dtype, exp)
                                                                  : bias_factor_fits(127, -126, 127));
  if (n % 2 == 0 && vector_cast_supported(f, to.dtype) && (exp == 0 || folds))
    return vector_cast(inst, source_slot);
  if (to.dtype == DataType::f32() && f.is_float() && f.bits() <= 8 && !f.has_inf() && !f.has_nan() &&
      bias_factor_fits(127, -126, 127))
    return small_float_to_f32(inst, source_slot);
  if (exp == 0 && f == DataType::f32() && (to.dtype == DataType::f16() || to.dtype == DataType::bf16()) && n % 2 == 0) {
    // One packed conversion per destination register (cvt.rn.f16x2.f32 / cvt.rn.bf16x2.f32).
    const std::string src = value(inst.operands[0].name), dst = value(inst.result);
    declare_tile(inst.result, to);
    for (std::int64_t j = 0; j < n / 2; ++j)
      line("{}[{}] = ab::pack_{}x2(ab::as_float({}[{}]), ab::as_float({}[{}]));", dst, j, to.dtype.name(), src,
           source_slot[2 * j], src, source_slot[2 * j + 1]);
    return;
  }
  scalar_cast(inst, source_slot);
}

void Emitter::vector_cast(const Instruction& inst, const std::vector<std::int64_t>& source_slot, bool widen) {
  const TensorType& from = type(inst.operands[0].name);
  const TensorType& to = type(inst.result);
  // widen: small floats into f32 by pairs, decoded as bf16x2 (which holds every value of them, and shares
  // f32's exponent range) and each half moved into its own f32.
  const DataType src_t = from.dtype, dst_t = widen ? DataType::bf16() : to.dtype;
  const int N = src_t.bits();
  const bool f16 = dst_t == DataType::f16();
  const std::string dst = value(inst.result);
  const int src_words = words(from);
  const std::int64_t n = to.layout->local_size();
  declare_tile(inst.result, to);
  line("{{");
  ++indent_;
  const auto store_pair = [&](std::int64_t j, const std::string& v) {
    if (!widen) return line("{}[{}] = {};", dst, j, v);
    line("{{ const ab::u32 p = {}; {}[{}] = p << 16; {}[{}] = p & 0xffff0000u; }}", v, dst, 2 * j, dst, 2 * j + 1);
  };
  const std::string src_raw = value(inst.operands[0].name);
  // The codes as the generic and byte paths read them: signed codes in offset binary (code + 2^(N-1)),
  // every sign bit flipped once per source word, emitted on first use (the half-split, table and nibble
  // paths fold the flip into their own lop3 or need none).
  bool flipped = false;
  const auto src = [&]() -> std::string {
    if (src_t.kind() != isa::TypeKind::SignedInt) return src_raw;
    if (!flipped) {
      line("ab::u32 flipped[{}];", src_words);
      for (int w = 0; w < src_words; ++w) {
        std::uint32_t sign_bits = 0;
        for (std::int64_t s = 0; s < n; ++s) {
          const std::int64_t bit = s * N + N - 1;
          if (bit / 32 == w) sign_bits |= 1u << (bit % 32);
        }
        line("flipped[{}] = {}[{}] ^ 0x{:08x}u;", w, src_raw, w, sign_bits);
      }
      flipped = true;
    }
    return "flipped";
  };
  const std::uint32_t code_mask = (1u << N) - 1u;
  const std::int64_t offset = src_t.kind() == isa::TypeKind::SignedInt ? (std::int64_t{1} << (N - 1)) : 0;
  // Formats of at most 8 codes whose f16 values (times 2^exp) all have a zero low byte (every 3-bit format;
  // code 0 is +0): one prmt looks both codes of a pair up in a two-register table of high bytes.
  const int exp = static_cast<int>(inst.attrs.exp.value_or(0));
  std::uint32_t table[2] = {0, 0};
  bool lut = f16 && N <= 3 && isa::encode(dst_t, isa::decode(src_t, 0)) == 0;
  for (std::uint32_t c = 0; lut && c < (1u << N); ++c) {
    const std::uint32_t h = isa::encode(dst_t, std::ldexp(isa::decode(src_t, c), exp));
    lut = (h & 0xFFu) == 0;
    table[c / 4] |= (h >> 8) << (8 * (c % 4));
  }
  // Integer codes whose pair sits at the same place in both halves of a word (a half-split packing): one
  // lop3 keeps the pair's bits under the magic number (and flips signed codes' sign bits), one packed fma
  // scales by 2^-r for codes r bits up and removes the magic: two instructions per pair. Codes too high
  // for the magic's mantissa come from one shifted copy of the word, shared by the pairs it serves.
  const int mantissa = f16 ? 10 : 7;
  // Offset decode (find_offset_casts): integer codes keep the magic number, and for codes r bits up a magic
  // whose last-place unit at bit r is 1 (2^(mantissa - r)), so a half holds code + offset exactly and no
  // packed fma or subtract follows; the dot removes each pair's offset (recorded negated, per register).
  const bool offset_decode = offset_casts_.count(inst.result) > 0;
  std::vector<std::uint32_t> offsets(static_cast<std::size_t>(n / 2), 0u);
  const auto record_offset = [&](std::int64_t j, double low, double high) {
    offsets[static_cast<std::size_t>(j)] = isa::encode(dst_t, -low) | isa::encode(dst_t, -high) << 16;
  };
  std::map<std::pair<std::string, int>, std::string> shifted;  // (word, right shift) -> variable
  const auto shifted_word = [&](const std::string& word, int by) {
    if (by == 0) return word;
    auto [it, fresh] = shifted.try_emplace({word, by}, fmt::format("w{}_{}", shifted.size(), by));
    if (fresh) line("const ab::u32 {} = {} >> {};", it->second, word, by);
    return it->second;
  };
  // A word with the 16-bit half h0 of the raw codes in its low half and h1 in its high half: the word
  // itself, or one prmt shared by every pair the two halves hold.
  std::map<std::pair<std::int64_t, std::int64_t>, std::string> joined;
  const auto halves = [&](std::int64_t h0, std::int64_t h1) {
    if (h0 % 2 == 0 && h1 == h0 + 1) return fmt::format("{}[{}]", src_raw, h0 / 2);
    auto [it, fresh] = joined.try_emplace({h0, h1}, fmt::format("h{}_{}", h0, h1));
    const unsigned lo = static_cast<unsigned>(2 * (h0 % 2)), hi = static_cast<unsigned>(4 + 2 * (h1 % 2));
    if (fresh)
      line("const ab::u32 {} = ab::prmt({}[{}], {}[{}], 0x{:x}u);", it->second, src_raw, h0 / 2, src_raw, h1 / 2,
           lo | (lo + 1) << 4 | hi << 8 | (hi + 1) << 12);
    return it->second;
  };
  // Small floats, pairs aligned in a word: the pairs sharing a word split into two mask groups alternating
  // by offset, and a pair decodes from its group's masked word when no bit of the group (its own code
  // included) lies where its two shifted copies are read; the others take the generic path below.
  struct SpreadPlan {
    std::int64_t h0 = 0, h1 = 0;  // the word's halves (see `halves`)
    std::uint32_t mask = 0;       // the pair's group
    int up = 0;                   // left shift that puts the pair's sign bits at 15 and 31
  };
  std::map<std::int64_t, SpreadPlan> spread;
  const int spread_shift = (f16 ? 5 : 8) - src_t.exponent_bits();
  const std::uint32_t spread_fields = src_t.is_float()
                                          ? ((1u << (src_t.exponent_bits() + src_t.mantissa_bits())) - 1u)
                                                << ((f16 ? 10 : 7) - src_t.mantissa_bits())
                                          : 0u;
  // Taken for 4-bit codes (two pairs per group): for 3-bit codes the extra shift per copy cost more than
  // the saved masks (f3e2m0 M = 1 on sm_80: 408 -> 432 instructions an iteration), 5 to 7-bit codes
  // overlap their own fields.
  if (src_t.is_float() && !src_t.has_nan() && !src_t.has_inf() && N == 4) {
    std::map<std::pair<std::int64_t, std::int64_t>, std::vector<std::pair<std::int64_t, std::int64_t>>> by_word;  // -> (offset, pair)
    for (std::int64_t j = 0; j < n / 2; ++j) {
      const std::int64_t p0 = source_slot[2 * j] * N, p1 = source_slot[2 * j + 1] * N;
      if (p1 > p0 && (p1 - p0) % 16 == 0 && p0 % 16 + N <= 16) by_word[{p0 / 16, p1 / 16}].push_back({p0 % 16, j});
    }
    for (auto& [halves_of, pairs] : by_word) {
      std::sort(pairs.begin(), pairs.end());
      std::uint32_t group_bits[2] = {0, 0};
      for (std::size_t i = 0; i < pairs.size(); ++i) group_bits[i % 2] |= pair(code_mask << pairs[i].first);
      for (std::size_t i = 0; i < pairs.size(); ++i) {
        const std::uint32_t bits = group_bits[i % 2];
        const int r = static_cast<int>(pairs[i].first), up = 16 - N - r;
        // t bits that land on the sign (from b) and on the fields (from a): all must be outside the group.
        bool clear = true;
        const auto read = [&](int out, int by) {  // the t bit a copy shifted left by `by` puts at bit `out`
          const int at = out - by;
          if (at >= 0 && at < 32 && (bits >> at & 1u)) clear = false;
        };
        for (int half : {0, 16}) {
          read(half + 15, up - spread_shift);
          for (int q = 0; q < 16; ++q)
            if (spread_fields >> q & 1u) read(half + q, up);
        }
        if (clear) spread[pairs[i].second] = {halves_of.first, halves_of.second, bits, up};
      }
    }
    // A group's mask is one instruction and each pair it serves saves one (two when b is t itself): a
    // group serving a single pair gains nothing; those pairs keep the generic path.
    std::map<std::tuple<std::int64_t, std::int64_t, std::uint32_t>, int> served;
    for (const auto& [j, q] : spread) ++served[{q.h0, q.h1, q.mask}];
    std::erase_if(spread, [&](const auto& e) { return served[{e.second.h0, e.second.h1, e.second.mask}] < 2; });
  }
  std::map<std::tuple<std::int64_t, std::int64_t, std::uint32_t>, std::string> masked;  // (h0, h1, mask) -> variable
  const auto masked_word = [&](const SpreadPlan& q) {
    auto [it, fresh] = masked.try_emplace({q.h0, q.h1, q.mask}, fmt::format("g{}", masked.size()));
    // The mask in an opaque register: with an immediate, ptxas moves the AND behind each shift (one AND
    // per copy instead of one per group).
    if (fresh) line("const ab::u32 {} = {} & {};", it->second, halves(q.h0, q.h1), constant_register(q.mask));
    return it->second;
  };
  for (std::int64_t j = 0; j < n / 2; ++j) {
    const std::int64_t p0 = source_slot[2 * j] * N, p1 = source_slot[2 * j + 1] * N;
    // Both codes at offset p0 % 16 of a 16-bit half, the first's half before the second's (half-split).
    const bool aligned = p1 > p0 && (p1 - p0) % 16 == 0 && p0 % 16 + N <= 16;
    if (src_t.is_integer() && N <= mantissa && aligned) {
      const std::int64_t r = p0 % 16;
      const std::string word = halves(p0 / 16, p1 / 16);
      // Shift so that the code's top bit stays inside the mantissa; steps of `span` bits serve several pairs.
      const int span = (mantissa - N) / N * N + N;
      int by = static_cast<int>(r / span * span), at = static_cast<int>(r) - by;
      if (at + N > mantissa) by = static_cast<int>(r), at = 0;
      const std::uint32_t magic = f16 ? 0x6400u : 0x4300u;
      const std::uint32_t mask = pair(code_mask << at);
      const std::uint32_t c = pair(magic) | (offset != 0 ? pair(1u << (at + N - 1)) : 0u);
      const double unit = std::ldexp(1.0, -at);
      const double base = (f16 ? 1024.0 : 128.0) * unit + static_cast<double>(offset);
      const std::uint32_t scale = pair(isa::encode(dst_t, unit)), shift = pair(isa::encode(dst_t, -base));
      if (offset_decode) {
        // Low half: magic + u (u = code + offset, the sign bit flipped). High half: the same negated, on the
        // complemented code: -(magic + 2^N - 1 - u), the code's weight still +1. Neighbouring weights (a pair
        // is two adjacent k) so carry offsets of opposite signs, and the sums of activations times offsets
        // the mma accumulates mostly cancel (activations of one sign had grown them, and their rounding,
        // about ten times larger in the f32 partial sums).
        const std::uint32_t unit_magic = f16 ? (25u - static_cast<std::uint32_t>(at)) << 10 : (134u - static_cast<std::uint32_t>(at)) << 7;
        const std::uint32_t sign_flip = offset != 0 ? 1u << (at + N - 1) : 0u;
        const std::uint32_t c1 = (unit_magic | sign_flip) | ((0x8000u | unit_magic | ((code_mask << at) ^ sign_flip)) << 16);
        line("{}[{}] = ab::lop3<0x6a>({}, 0x{:08x}u, {});", dst, j, shifted_word(word, by), mask, constant_register(c1));
        const double magic_value = std::ldexp(1.0, mantissa - at), off = static_cast<double>(offset);
        const double low = magic_value + off, high = off - magic_value - static_cast<double>(code_mask);
        record_offset(j, low, high);
        continue;
      }
      // The mask and the addend fit the instructions' immediate slots; the magic number and the multiplier
      // take registers (kept across iterations: 1 and 2-bit codes use up to 20 distinct ones).
      line("{}[{}] = ab::{}(ab::lop3<0x6a>({}, 0x{:08x}u, {}), {}, 0x{:08x}u);", dst, j, f16 ? "hfma2" : "bfma2",
           shifted_word(word, by), mask, constant_register(c), constant_register(scale), shift);
      continue;
    }
    if (src_t.is_integer() && N == 8 && (!f16 || p0 / 32 == p1 / 32)) {
      const std::int64_t b0 = (p0 % 32) / 8, b1 = (p1 % 32) / 8;
      const std::string word = fmt::format("{}[{}]", src(), p0 / 32), word1 = fmt::format("{}[{}]", src(), p1 / 32);
      if (f16) {  // both bytes share a word
        // bytes [code0, 0x64, code1, 0x64]: 1024 + code per half
        const std::string h = fmt::format("ab::prmt({}, 0x64646464u, 0x{:x}u)", word,
                                          b0 | (5u << 4) | (static_cast<unsigned>(b1) << 8) | (5u << 12));
        if (offset_decode) {
          line("{}[{}] = {};", dst, j, h);
          record_offset(j, 1024.0 + static_cast<double>(offset), 1024.0 + static_cast<double>(offset));
        } else {
          line("{}[{}] = ab::hsub2({}, 0x{:08x}u);", dst, j, h, pair(0x6400u + static_cast<std::uint32_t>(offset)));
        }
      } else {
        // f32 2^23 + code, exact subtract, one packed conversion
        const auto sel = [](std::int64_t b) { return static_cast<unsigned>(b) | (4u << 4) | (4u << 8) | (7u << 12); };
        line("{}[{}] = ab::pack_bf16x2(ab::as_float(ab::prmt({}, 0x4b000000u, 0x{:x}u)) - {}.0f, "
             "ab::as_float(ab::prmt({}, 0x4b000000u, 0x{:x}u)) - {}.0f);",
             dst, j, word, sel(b0), 8388608 + offset, word1, sel(b1), 8388608 + offset);
      }
      continue;
    }
    if (lut && !aligned) {  // aligned pairs: moving the fields costs less than building a selector
      // Both codes index the table of f16 high bytes (low bytes are zero): a prmt selector with the
      // first code in nibble 1, the second in nibble 3, and byte 0 (code 0, +0) under both low bytes.
      const std::string a = field(src_raw, src_words, p0 - 4), b = field(src_raw, src_words, p1 - 12);
      line("{}[{}] = ab::prmt(0x{:08x}u, 0x{:08x}u, ab::lop3<0xf8>({} & 0x{:x}u, {}, 0x{:x}u));", dst, j, table[0], table[1], a,
           code_mask << 4, b, code_mask << 12);
      continue;
    }
    if (src_t.is_integer() && N == 4 && f16 && p0 % 8 == 0 && p1 == p0 + 4) {
      // Both codes in one byte: one prmt copies the byte into each half, one lop3 keeps the low nibble in
      // the low half and the high nibble (x16) in the high half under the magic 1024, and one packed fma
      // scales the high half by 1/16 and removes the magic (and the offset): 1.5 instructions per code.
      const std::int64_t w0 = p0 / 32, b0 = (p0 % 32) / 8;
      const unsigned sel = static_cast<unsigned>(b0) | (4u << 4) | (static_cast<unsigned>(b0) << 8) | (4u << 12);
      const std::uint32_t scale = isa::encode(dst_t, 1.0) | (isa::encode(dst_t, 1.0 / 16) << 16);
      const std::uint32_t shift = isa::encode(dst_t, -1024.0 - static_cast<double>(offset)) |
                                  (isa::encode(dst_t, -64.0 - static_cast<double>(offset)) << 16);
      // Signed codes: the sign flip joins the lop3, (x & mask) ^ (magic | sign bits), on the unflipped word.
      const bool flip = offset != 0;
      line("{}[{}] = ab::hfma2(ab::lop3<0x{:x}>(ab::prmt({}[{}], 0u, 0x{:x}u), 0x00f0000fu, 0x{:08x}u), 0x{:08x}u, 0x{:08x}u);", dst,
           j, flip ? 0x6a : 0xea, src_raw, w0, sel, flip ? 0x64806408u : 0x64006400u, scale, shift);
      continue;
    }
    if (const auto plan = spread.find(j); plan != spread.end()) {
      // Small float, pair aligned in a word: t keeps this pair's mask group (the word's other codes are
      // zeros around it), a = t shifted to put the sign at bit 15, b = t shifted `shift` less to put the
      // exponent and mantissa in the destination's fields; neither carries a group bit where the other's
      // field lies, so one lop3 (a | b) & (sign | fields) assembles the pair: 2-3 instructions in place of
      // 3-4, and the group's mask is shared by every pair it holds.
      const SpreadPlan& q = plan->second;
      const std::string t = masked_word(q);
      const auto shifted_by = [&](int by) {
        return by == 0 ? t : by > 0 ? fmt::format("({} << {})", t, by) : fmt::format("({} >> {})", t, -by);
      };
      std::string v = fmt::format("ab::lop3<0xa8>({}, {}, 0x{:08x}u)", shifted_by(q.up), shifted_by(q.up - spread_shift),
                                  pair(0x8000u | spread_fields));
      const int bias = src_t.exponent_bias(), dst_bias = f16 ? 15 : 127;
      if (bias != dst_bias + exp) {  // 2^(dst_bias - bias + exp): a normal number (Emitter::cast checked)
        const std::uint32_t scale = isa::encode(dst_t, std::ldexp(1.0, dst_bias - bias + exp));
        v = f16 ? fmt::format("ab::hmul2({}, 0x{:08x}u)", v, pair(scale)) : fmt::format("ab::bfma2({}, 0x{:08x}u, 0x80008000u)", v, pair(scale));
      }
      store_pair(j, v);
      continue;
    }
    // Codes at bit `pos` of each half: 0 for integers, high-aligned (16 - N) for small floats.
    const std::int64_t pos = src_t.is_integer() ? 0 : 16 - N;
    std::string x;
    if (aligned) {  // the codes move up to the top of their halves (what lies below is masked)
      const std::string word = halves(p0 / 16, p1 / 16);
      const std::int64_t up = pos - p0 % 16;
      x = up == 0 ? word : fmt::format("({} << {})", word, up);
    } else if (!src_t.is_integer() && N == 8) {
      // One prmt puts each byte in the top of its half; the low bytes are don't-cares (masked below).
      const unsigned b0 = static_cast<unsigned>(p0 % 32 / 8), b1 = static_cast<unsigned>(p1 % 32 / 8) + (p1 / 32 == p0 / 32 ? 0u : 4u);
      x = fmt::format("ab::prmt({}[{}], {}[{}], 0x{:x}u)", src_raw, p0 / 32, src_raw, p1 / 32, b0 | (b0 << 4) | (b1 << 8) | (b1 << 12));
    } else if (p1 - p0 == 16) {
      x = field(src(), src_words, p0 - pos);
    } else {
      x = fmt::format("ab::lop3<0xe4>({}, {}, 0x0000ffffu)", field(src(), src_words, p0 - pos),
                      field(src(), src_words, p1 - 16 - pos));  // low half from the first, high from the second
    }
    if (src_t.is_integer()) {
      const std::uint32_t magic = f16 ? 0x6400u : 0x4300u;
      const std::string h = fmt::format("ab::lop3<0xea>({}, 0x{:08x}u, 0x{:08x}u)", x, pair(code_mask), pair(magic));
      if (offset_decode) {
        line("{}[{}] = {};", dst, j, h);
        const double in_half = (f16 ? 1024.0 : 128.0) + static_cast<double>(offset);
        record_offset(j, in_half, in_half);
      } else if (f16)
        line("{}[{}] = ab::hsub2({}, 0x{:08x}u);", dst, j, h, pair(magic + static_cast<std::uint32_t>(offset)));
      else  // bf16 has no packed subtract before sm_90: fma with 1.0 and the negated magic
        line("{}[{}] = ab::bfma2({}, 0x3f803f80u, 0x{:08x}u);", dst, j, h,
             pair(0x8000u | (magic + static_cast<std::uint32_t>(offset))));
      continue;
    }
    // Small float: sign stays at bit 15; exponent and mantissa move to the destination's fields.
    const int E = src_t.exponent_bits(), M = src_t.mantissa_bits();
    const int dst_mantissa = f16 ? 10 : 7, dst_exponent_bits = f16 ? 5 : 8;
    const int shift = dst_exponent_bits - E;
    const std::uint32_t magnitude = ((1u << (E + M)) - 1u) << (dst_mantissa - M);
    line("{{");
    ++indent_;
    line("const ab::u32 x = {};", x);
    if (halves_e5(src_t, dst_t, exp)) {
      // f6e5m0 and f7e5m1 at 2^-1: the fields map straight across and halve in one packed multiply, except
      // exponent 31 (2^16 and, for f7e5m1, 1.5 * 2^16), which f16 reads as inf or NaN: the halved magnitude
      // is clamped to 2^15 times the code's mantissa (a packed min gives the other operand for NaN; every
      // other code halves below 2^15) and given its sign back. Four instructions a pair for f6e5m0 (f6e4m1's
      // generic decode takes three), five for f7e5m1, whose clamp carries the mantissa bit (against eight
      // through f32). 2^15 sits in a register: with both constants immediate, ptxas splits the lop3.
      const std::string clamp = M == 0 ? "0x78007800u"
                                       : fmt::format("ab::lop3<0xf8>({}, x, 0x{:08x}u)", constant_register(pair(0x7800u)), pair(1u << 9));
      line("const ab::u32 h = ab::hmin2(ab::hmul2(x & 0x{:08x}u, 0x38003800u), {});", pair(magnitude), clamp);
      store_pair(j, "ab::lop3<0xf8>(h, x, 0x80008000u)");  // h | (x & sign)
      --indent_;
      line("}}");
      continue;
    }
    // f8e4m3 to f16: the NaN code S.1111.111 lands as magnitude 0x3f80, one unit below 0x4000; adding the
    // unit carries into bit 14 exactly then, and setting bit 14 makes the f16 exponent all ones with a
    // nonzero mantissa: NaN, with two instructions in place of a compare-and-patch.
    // {finite}: no NaN or inf code to patch.
    const bool specials = !inst.attrs.finite;
    const bool nan_by_carry = specials && f16 && src_t.has_nan() && !src_t.has_inf() && E + 1 == dst_exponent_bits;
    if (nan_by_carry) {
      const std::uint32_t unit = 1u << (dst_mantissa - M), carry = 1u << (dst_mantissa + E);
      line("const ab::u32 t = (x >> {}) & 0x{:08x}u;", shift, pair(magnitude));
      line("const ab::u32 v = ab::lop3<0xf8>(ab::lop3<0xec>(x, t, 0x80008000u), t + 0x{:08x}u, 0x{:08x}u);", pair(unit),
           pair(carry));  // (sign | t) | ((t + unit) & carry)
    } else {
      line("const ab::u32 v = ab::lop3<0xec>(x, (x >> {}) & 0x{:08x}u, 0x80008000u);", shift, pair(magnitude));
    }
    const int bias = src_t.exponent_bias(), dst_bias = f16 ? 15 : 127;
    std::string result = "v";
    if (bias != dst_bias + exp) {  // 2^(dst_bias - bias + exp): a normal number (Emitter::cast checked)
      const std::uint32_t scale = isa::encode(dst_t, std::ldexp(1.0, dst_bias - bias + exp));
      result = f16 ? fmt::format("ab::hmul2(v, 0x{:08x}u)", pair(scale)) : fmt::format("ab::bfma2(v, 0x{:08x}u, 0x80008000u)", pair(scale));
    }
    // Special codes: compare the high-aligned magnitude bits of each half.
    const std::uint32_t mag_hi = ((1u << (E + M)) - 1u) << (16 - N);
    const std::uint32_t nan = f16 ? 0x7E00u : 0x7FC0u, inf = f16 ? 0x7C00u : 0x7F80u;
    if (specials && src_t.has_nan() && !src_t.has_inf() && !nan_by_carry)  // f8e4m3 to bf16: S.1111.111; one unit carries into bit 15
      result = fmt::format("ab::nan_where_all_ones({}, x, 0x{:08x}u, 0x{:08x}u, 0x{:08x}u)", result, pair(mag_hi),
                           pair(1u << (16 - N)), pair(nan));
    if (specials && src_t.has_inf() && !f16) {  // f8e5m2 to bf16: exponent all ones is inf (m = 0) or NaN
      const std::uint32_t exp_hi = ((1u << E) - 1u) << (16 - N + M);
      result = fmt::format("ab::replace_halves({}, x, 0x{:04x}u, 0x{:04x}u, 0x{:04x}u)", result, mag_hi, exp_hi, inf);
      for (std::uint32_t m = 1; m < (1u << M); ++m)
        result = fmt::format("ab::replace_halves({}, x, 0x{:04x}u, 0x{:04x}u, 0x{:04x}u)", result, mag_hi,
                             exp_hi | (m << (16 - N)), nan);
    }
    if (f16 && E == 5 && !src_t.has_inf() && M > 0) {
      // f7e5m1: exponent 31 is finite >= 65536, which rounds to inf; the fields map straight across, so
      // clearing the mantissa where the exponent is all ones gives inf (f6e5m0 has no mantissa: already inf).
      const std::uint32_t exp_hi = ((1u << E) - 1u) << (16 - N + M);
      result = fmt::format("ab::clear_where_all_ones({}, x, 0x{:08x}u, 0x{:08x}u, 0x{:08x}u)", result, pair(exp_hi),
                           pair(1u << (16 - N + M)), pair(0x03ffu));
    }
    store_pair(j, result);
    --indent_;
    line("}}");
  }
  --indent_;
  line("}}");
  if (std::any_of(offsets.begin(), offsets.end(), [](std::uint32_t o) { return o != 0; })) offsets_[inst.result] = offsets;
}

// Small floats without inf or NaN to f32, one element per register: the code's sign to bit 31, its
// exponent and mantissa shifted into f32's fields, then one multiply by 2^(127 - bias): exact for every
// code (subnormals become f32 subnormals times a power of two; no f32 field is all ones). The formats whose
// values f16 cannot hold (f6e5m0 to f8e7m0) reach the matmul this way.
void Emitter::small_float_to_f32(const Instruction& inst, const std::vector<std::int64_t>& source_slot) {
  const TensorType& from = type(inst.operands[0].name);
  const TensorType& to = type(inst.result);
  // By pairs where the slots pair up: the codes of a pair move into bf16 fields together (the vector path's
  // shifts and masks serve both), then each half becomes an f32 (sm_80, f8e7m0 M = 1: 10 -> 8 instructions
  // a pair of weights with the scale's multiply and the conversion back).
  if (to.layout->local_size() % 2 == 0) return vector_cast(inst, source_slot, /*widen=*/true);
  const DataType t = from.dtype;
  const int N = t.bits(), E = t.exponent_bits(), M = t.mantissa_bits();
  const std::string src = value(inst.operands[0].name), dst = value(inst.result);
  declare_tile(inst.result, to);
  const std::uint32_t magnitude = ((1u << (E + M)) - 1u) << (23 - M);
  const int exp = static_cast<int>(inst.attrs.exp.value_or(0));
  const std::uint32_t scale = static_cast<std::uint32_t>(254 - t.exponent_bias() + exp) << 23;  // 2^(127 - bias + exp)
  for (std::int64_t s = 0; s < to.layout->local_size(); ++s) {
    const std::int64_t p = source_slot[s] * N;  // the code's bits: [p, p + N) of the source's words
    const std::string x = field(src, words(from), p + N - 32);  // sign at bit 31
    if (scale == 0x3f800000u) {  // exp = bias - 127: the moved fields are the value (the scale carries 2^(127 - bias))
      line("{{ const ab::u32 x = {}; {}[{}] = ab::lop3<0xec>(x, (x >> {}) & 0x{:08x}u, 0x80000000u); }}", x, dst, s, 8 - E,
           magnitude);
      continue;
    }
    line("{{ const ab::u32 x = {}; {}[{}] = ab::as_u32(ab::as_float(ab::lop3<0xec>(x, (x >> {}) & 0x{:08x}u, 0x80000000u)) * "
         "ab::as_float(0x{:08x}u)); }}",
         x, dst, s, 8 - E, magnitude, scale);
  }
}

void Emitter::scalar_cast(const Instruction& inst, const std::vector<std::int64_t>& source_slot) {
  const TensorType& from = type(inst.operands[0].name);
  const TensorType& to = type(inst.result);
  const std::string src = value(inst.operands[0].name), dst = value(inst.result);
  declare_tile(inst.result, to);
  const int sb = from.dtype.bits(), db = to.dtype.bits();
  const bool int_to_int = (from.dtype.is_integer() || from.dtype.is_bool()) && to.dtype.is_integer();
  if (!(from.dtype == to.dtype) && from.dtype.bits() <= 8 && (to.dtype == DataType::f16() || to.dtype == DataType::bf16()))
    fallbacks_.push_back(fmt::format("{}: cast {} -> {}: per element", inst.location, from.dtype.name(), to.dtype.name()));
  const bool reordered = inst.type.has_value();
  std::string code = fmt::format("ab::get<{}>({}, {})", sb, src, reordered ? "from" : "s");
  std::string converted;
  if (from.dtype == to.dtype && !inst.attrs.exp) {
    converted = code;
  } else if (int_to_int) {
    const std::string wide = from.dtype.is_signed() ? fmt::format("ab::sext<{}>({})", sb, code) : fmt::format("(ab::i64)({})", code);
    converted = fmt::format("ab::saturate_int<{}, {}>({})", db, to.dtype.is_signed() ? "true" : "false", wide);
  } else if (const int exp = static_cast<int>(inst.attrs.exp.value_or(0)); exp != 0) {
    // Exact: the type rule admits exp only when every source value times 2^exp is a destination value.
    converted = encode_f32(to.dtype, fmt::format("({} * ab::as_float(0x{:08x}u))", decode_f32(from.dtype, code),
                                                 static_cast<std::uint32_t>(127 + exp) << 23));
  } else {
    converted = encode_f32(to.dtype, decode_f32(from.dtype, code));
  }
  if (reordered) {  // slot by slot from the source slot the reordering names
    for (std::int64_t s = 0; s < to.layout->local_size(); ++s)
      line("{{ const int s = {}, from = {}; ab::set<{}>({}, s, {}); }}", s, source_slot[s], db, dst, converted);
    return;
  }
  line("#pragma unroll");
  line("for (int s = 0; s < {}; ++s) ab::set<{}>({}, s, {});", to.layout->local_size(), db, dst, converted);
}

}  // namespace anybit::backend_cuda::detail
