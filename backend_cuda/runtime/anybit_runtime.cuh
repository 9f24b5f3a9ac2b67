// anybit runtime: the vocabulary every emitted kernel calls. Each intrinsic has an inline-PTX body under
// __CUDA_ARCH__ and a reference C++ body for the CPU (the simulator compiles the same kernel source with
// the host compiler). Warp collectives (mma, ldmatrix, shuffles) and asynchronous copies need every lane
// or the block at once on the CPU: there they call hooks the simulator provides (ab_sim_*).
//
// Registers of a tile are an array of 32-bit words holding the tile's local slots as a dense LSB-first bit
// stream (slot l at bit l * BITS), exactly the PTX fragment registers for 16-bit and 8-bit types.
#pragma once

#ifndef __CUDACC_RTC__
#include <cstdint>
#include <cstring>
#endif

#if defined(__CUDA_ARCH__)
#define AB_DEVICE __device__ __forceinline__
#else
#define AB_DEVICE inline
#define __global__
#define __shared__
#define __launch_bounds__(...)
#define __maxnreg__(n)
#define __restrict__
#define __align__(x) alignas(x)
#endif

#if defined(__CUDA_ARCH__)
#define AB_DECLARE_SHARED(name) extern __shared__ __align__(128) ab::u8 name[]
#else
#define AB_DECLARE_SHARED(name) ab::u8* const name = ab::ab_sim_current->shared
#endif

namespace ab {

typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;
typedef unsigned char u8;

#if !defined(__CUDA_ARCH__)
// CPU execution context of the current simulated thread, set by the simulator.
struct SimThread {
  int thread = 0;
  int block[3] = {0, 0, 0};
  u8* shared = nullptr;
  int instruction = -1;  // index of the VM instruction being executed (AB_AT)
};
extern thread_local SimThread* ab_sim_current;
void ab_sim_bar_sync();
void ab_sim_cp_async(void* dst, const void* src, int bytes, int src_bytes);
void ab_sim_cp_async_commit();
void ab_sim_cp_async_wait(int n);
void ab_sim_ldmatrix(u32* d, const void* row, int count, bool trans);
void ab_sim_mma(const char* shape_and_types, u32* d, const u32* a, const u32* b, const u32* c);
u32 ab_sim_shfl_xor(u32 value, int lane_mask);
// Every memory access of a CPU run: bounds (a launch buffer or the block's planned shared memory),
// natural alignment of `align` bytes, shared-memory races, and the traffic counters.
enum Access { kRead = 0, kWrite = 1, kAtomicWrite = 2 };
void ab_sim_access(const void* p, int bytes, int align, int access);
// Counts one executed arithmetic or bit instruction of the vocabulary (lop3, prmt, shf, packed half
// arithmetic, conversions, float arithmetic) for the simulator's counters.
void ab_sim_count();
#endif

#if defined(__CUDA_ARCH__)
#define AB_COUNT()
#else
#define AB_COUNT() ab::ab_sim_count()
#endif

// Marks the VM instruction the following code implements (for error messages on the CPU; free on GPU).
#if defined(__CUDA_ARCH__)
#define AB_AT(index)
#else
#define AB_AT(index) (ab::ab_sim_current->instruction = (index))
#endif

// ---- thread and block indices, barrier
AB_DEVICE int thread_idx() {
#if defined(__CUDA_ARCH__)
  return threadIdx.x;
#else
  return ab_sim_current->thread;
#endif
}
// Zero, in a form no compiler folds (the dynamic shared memory size is far below 2^31). Constants derived
// from it stay in registers across loop iterations: ptxas otherwise re-materializes a register operand such
// as a decode's magic number at every use, in every iteration.
AB_DEVICE u32 opaque_zero() {
#if defined(__CUDA_ARCH__)
  u32 v;
  asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(v));
  return v >> 31;
#else
  return 0u;
#endif
}
AB_DEVICE int block_idx(int d) {
#if defined(__CUDA_ARCH__)
  return d == 0 ? blockIdx.x : d == 1 ? blockIdx.y : blockIdx.z;
#else
  return ab_sim_current->block[d];
#endif
}
AB_DEVICE void bar_sync() {
#if defined(__CUDA_ARCH__)
  asm volatile("bar.sync 0;" ::: "memory");
#else
  ab_sim_bar_sync();
#endif
}

// ---- integer helpers with the VM's floor semantics
AB_DEVICE i64 floordiv(i64 a, i64 b) { i64 q = a / b; return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q; }
AB_DEVICE i64 floormod(i64 a, i64 b) { return a - floordiv(a, b) * b; }
AB_DEVICE i64 ceildiv(i64 a, i64 b) { return -floordiv(-a, b); }
AB_DEVICE i64 min(i64 a, i64 b) { return a < b ? a : b; }
AB_DEVICE i64 max(i64 a, i64 b) { return a > b ? a : b; }
// 32-bit forms, for index arithmetic whose operands and result the emitter proved to fit in 32 bits.
AB_DEVICE i32 floordiv32(i32 a, i32 b) { i32 q = a / b; return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q; }
AB_DEVICE i32 floormod32(i32 a, i32 b) { return a - floordiv32(a, b) * b; }
AB_DEVICE i32 ceildiv32(i32 a, i32 b) { return -floordiv32(-a, b); }
AB_DEVICE i32 min32(i32 a, i32 b) { return a < b ? a : b; }
AB_DEVICE i32 max32(i32 a, i32 b) { return a > b ? a : b; }

// ---- packed slots of a register tile
template <int BITS>
AB_DEVICE u32 get(const u32* r, int slot) {
  const int bit = slot * BITS;
  if (BITS == 32) return r[slot];
  const u32 lo = r[bit >> 5] >> (bit & 31);
  const u32 hi = ((bit & 31) + BITS > 32) ? (r[(bit >> 5) + 1] << (32 - (bit & 31))) : 0u;
  return (lo | hi) & ((1u << BITS) - 1u);
}
template <int BITS>
AB_DEVICE void set(u32* r, int slot, u32 code) {
  if (BITS == 32) { r[slot] = code; return; }
  const int bit = slot * BITS;
  const u32 mask = (1u << BITS) - 1u;
  code &= mask;
  r[bit >> 5] = (r[bit >> 5] & ~(mask << (bit & 31))) | (code << (bit & 31));
  if ((bit & 31) + BITS > 32) {
    const int spill = 32 - (bit & 31);
    r[(bit >> 5) + 1] = (r[(bit >> 5) + 1] & ~(mask >> spill)) | (code >> spill);
  }
}

// ---- bit manipulation
template <int IMM>
AB_DEVICE u32 lop3(u32 a, u32 b, u32 c) {
#if defined(__CUDA_ARCH__)
  u32 d;
  asm("lop3.b32 %0, %1, %2, %3, %4;" : "=r"(d) : "r"(a), "r"(b), "r"(c), "n"(IMM));
  return d;
#else
  AB_COUNT();
  u32 d = 0;
  for (int i = 0; i < 32; ++i) {
    const int index = (((a >> i) & 1) << 2) | (((b >> i) & 1) << 1) | ((c >> i) & 1);
    d |= ((IMM >> index) & 1u) << i;
  }
  return d;
#endif
}
AB_DEVICE u32 prmt(u32 a, u32 b, u32 selector) {
#if defined(__CUDA_ARCH__)
  u32 d;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(selector));
  return d;
#else
  AB_COUNT();
  const u64 bytes = (u64)a | ((u64)b << 32);
  u32 d = 0;
  for (int i = 0; i < 4; ++i) {
    const u32 s = (selector >> (4 * i)) & 0xF;
    u32 byte = (u32)(bytes >> (8 * (s & 7))) & 0xFF;
    if (s & 8) byte = (byte & 0x80) ? 0xFF : 0x00;
    d |= byte << (8 * i);
  }
  return d;
#endif
}

// ---- floats: f32 <-> f16/bf16 codes (round to nearest even), bit casts
AB_DEVICE float as_float(u32 x) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(x);
#else
  float f; std::memcpy(&f, &x, 4); return f;
#endif
}
AB_DEVICE u32 as_u32(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  u32 x; std::memcpy(&x, &f, 4); return x;
#endif
}
AB_DEVICE float f16_to_f32(u32 h) {
#if defined(__CUDA_ARCH__)
  float f;
  asm("{ .reg .b16 t; cvt.u16.u32 t, %1; cvt.f32.f16 %0, t; }" : "=f"(f) : "r"(h));
  return f;
#else
  AB_COUNT();
  const u32 sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  if (exp == 0x1F) return as_float(sign | 0x7F800000u | (man << 13));
  if (exp != 0) return as_float(sign | ((exp + 112) << 23) | (man << 13));
  const float sub = (float)man * (1.0f / 16777216.0f);  // man * 2^-24, exact
  return sign ? -sub : sub;
#endif
}
AB_DEVICE u32 f32_to_f16(float f) {
#if defined(__CUDA_ARCH__)
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
#else
  AB_COUNT();
  const u32 x = as_u32(f), sign = (x >> 16) & 0x8000u;
  const u32 ax = x & 0x7FFFFFFFu;
  if (ax > 0x7F800000u) return sign | 0x7E00u;           // NaN
  if (ax >= 0x477FF000u) return sign | 0x7C00u;          // rounds to inf (>= 65520)
  if (ax < 0x38800000u) {                                // below the smallest normal: scale to subnormal units
    const float units = as_float(ax) * 16777216.0f;      // exact: |f| * 2^24
    const u32 q = (u32)units;
    const float rest = units - (float)q;
    const u32 r = q + ((rest > 0.5f || (rest == 0.5f && (q & 1u))) ? 1u : 0u);
    return sign | r;
  }
  const u32 rounded = ax + 0xFFFu + ((ax >> 13) & 1u);   // round the 13 dropped bits to nearest even
  return sign | ((rounded - 0x38000000u) >> 13);
#endif
}
AB_DEVICE float bf16_to_f32(u32 h) { return as_float(h << 16); }
AB_DEVICE u32 f32_to_bf16(float f) {
  const u32 x = as_u32(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return ((x >> 16) & 0x8000u) | 0x7FC0u;
  return (x + 0x7FFFu + ((x >> 16) & 1u)) >> 16;
}

// A float code of 1 + E + M bits (E <= 8, M <= 23) to f32, exactly. SPECIAL: 0 all finite, 1 IEEE-like
// (exponent all ones is inf/NaN), 2 "fn" (only S.1..1.1..1 is NaN).
template <int E, int M, int SPECIAL>
AB_DEVICE float small_float_to_f32(u32 code) {
  const u32 sign = (code >> (E + M)) & 1u, exp = (code >> M) & ((1u << E) - 1u), man = code & ((1u << M) - 1u);
  const int bias = (1 << (E - 1)) - 1;
  float v;
  if (SPECIAL == 1 && exp == (1u << E) - 1u) {
    v = as_float(man ? 0x7FC00000u : 0x7F800000u);
  } else if (SPECIAL == 2 && exp == (1u << E) - 1u && man == (1u << M) - 1u) {
    v = as_float(0x7FC00000u);
  } else if (exp == 0) {
    // man * 2^(1 - bias - M): scale in two exact steps to stay clear of f32 subnormal limits
    v = (float)man * as_float((u32)(127 + 1 - bias - M) << 23);
  } else {
    v = as_float(((u32)(exp - bias + 127) << 23) | (man << (23 - M)));
  }
  return sign ? -v : v;
}

// ---- integer codes
template <int BITS>
AB_DEVICE i64 sext(u32 code) {
  return BITS >= 32 ? (i64)(i32)code : (i64)(((i32)(code << (32 - BITS))) >> (32 - BITS));
}
// Wraps to BITS bits (two's complement), as a code.
template <int BITS>
AB_DEVICE u32 wrap(i64 v) { return BITS >= 32 ? (u32)v : (u32)v & ((1u << BITS) - 1u); }
// Saturates an integer to a signed or unsigned BITS-bit type, as a code.
template <int BITS, bool SIGNED>
AB_DEVICE u32 saturate_int(i64 v) {
  const i64 lo = SIGNED ? -((i64)1 << (BITS - 1)) : 0;
  const i64 hi = SIGNED ? ((i64)1 << (BITS - 1)) - 1 : ((i64)1 << BITS) - 1;
  return wrap<BITS>(v < lo ? lo : v > hi ? hi : v);
}
// Rounds to nearest even and saturates a float to an integer type, as a code (NaN gives 0).
template <int BITS, bool SIGNED>
AB_DEVICE u32 f32_to_int(float f) {
  if (f != f) return 0u;
  const float lo = SIGNED ? -(float)((i64)1 << (BITS - 1)) : 0.0f;
  const float hi = SIGNED ? (float)(((i64)1 << (BITS - 1)) - 1) : (float)(((i64)1 << BITS) - 1);
  if (f <= lo) return saturate_int<BITS, SIGNED>((i64)lo);
  if (f >= hi) return saturate_int<BITS, SIGNED>(SIGNED ? ((i64)1 << (BITS - 1)) - 1 : ((i64)1 << BITS) - 1);
#if defined(__CUDA_ARCH__)
  return wrap<BITS>((i64)rintf(f));
#else
  return wrap<BITS>((i64)__builtin_rintf(f));
#endif
}

// Float arithmetic without contraction: each operation rounds once.
AB_DEVICE float fadd(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  AB_COUNT();
  return a + b;
#endif
}
AB_DEVICE float fsub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  AB_COUNT();
  return a - b;
#endif
}
AB_DEVICE float fmul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  AB_COUNT();
  return a * b;
#endif
}
AB_DEVICE float fdiv(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  AB_COUNT();
  return a / b;
#endif
}
AB_DEVICE float ffma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  AB_COUNT();
  return __builtin_fmaf(a, b, c);
#endif
}
// The VM's min and max: a NaN operand yields the other operand, and -0 < +0.
AB_DEVICE float fmin_(float a, float b) {
  if (a != a) return b;
  if (b != b) return a;
  if (a != b) return a < b ? a : b;
  return (as_u32(a) >> 31) ? a : b;
}
AB_DEVICE float fmax_(float a, float b) {
  if (a != a) return b;
  if (b != b) return a;
  if (a != b) return a > b ? a : b;
  return (as_u32(a) >> 31) ? b : a;
}

#if !defined(__CUDA_ARCH__)
// p + q rounded to odd, first at double precision (TwoSum gives the exact error), then at f32 precision.
// Round-to-odd composes, and a round-to-odd value of at least p + 2 bits rounds to nearest p-bit format
// correctly, so converting the result to f16 or bf16 gives the correctly rounded fma.
inline double round_to_odd(double p, double q) {
  const double s = p + q, bp = s - p, ap = s - bp, err = (p - ap) + (q - bp);
  if (err == 0.0) return s;
  u64 bits;
  std::memcpy(&bits, &s, 8);
  if ((err > 0) != (s > 0)) bits -= 1;  // s was rounded away from zero: step back toward zero
  bits |= 1u;
  double r;
  std::memcpy(&r, &bits, 8);
  return r;
}
inline float round_to_odd_f32(double p, double q) {
  const double r = round_to_odd(p, q);
  float f = (float)r;
  if ((double)f != r) {
    u32 b;
    std::memcpy(&b, &f, 4);
    if (((double)f > r) == (r > 0)) b -= 1;  // rounded away from zero: step back
    b |= 1u;
    std::memcpy(&f, &b, 4);
  }
  return f;
}
#endif

// f16 and bf16 fused multiply-add on codes, rounded once.
AB_DEVICE u32 fma_f16(u32 a, u32 b, u32 c) {
#if defined(__CUDA_ARCH__)
  unsigned short d;
  asm("fma.rn.f16 %0, %1, %2, %3;" : "=h"(d) : "h"((unsigned short)a), "h"((unsigned short)b), "h"((unsigned short)c));
  return d;
#else
  AB_COUNT();
  // Products of f16 values are exact in double; the sum is rounded to odd in double (sticky bit), so one
  // more rounding to f16 is correct.
  const double p = (double)f16_to_f32(a) * (double)f16_to_f32(b), q = (double)f16_to_f32(c);
  return f32_to_f16(round_to_odd_f32(p, q));
#endif
}
AB_DEVICE u32 fma_bf16(u32 a, u32 b, u32 c) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned short d;
  asm("fma.rn.bf16 %0, %1, %2, %3;" : "=h"(d) : "h"((unsigned short)a), "h"((unsigned short)b), "h"((unsigned short)c));
  return d;
#else
  AB_COUNT();
  const double p = (double)bf16_to_f32(a) * (double)bf16_to_f32(b), q = (double)bf16_to_f32(c);
  return f32_to_bf16(round_to_odd_f32(p, q));
#endif
}

// A float to a small float code of 1 + E + M bits: round to nearest even (ties to the even code),
// saturate to +-max finite (inf included); NaN gives the format's NaN or +0. SPECIAL as small_float_to_f32.
template <int E, int M, int SPECIAL>
AB_DEVICE u32 f32_to_small_float(float f) {
  const u32 x = as_u32(f), sign = (x >> 31) << (E + M);
  const u32 all = (1u << (E + M)) - 1u;
  const u32 max_code = SPECIAL == 2 ? all - 1u : SPECIAL == 1 ? (((1u << E) - 2u) << M) | ((1u << M) - 1u) : all;
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return SPECIAL == 2 ? 0x7Fu : SPECIAL == 1 ? ((all >> M) << M) | (1u << (M - 1 > 0 ? M - 1 : 0)) : 0u;
  const float a = as_float(x & 0x7FFFFFFFu);
  const int bias = (1 << (E - 1)) - 1;
  if (a >= small_float_to_f32<E, M, SPECIAL>(max_code)) return sign | max_code;
  int e = (int)((as_u32(a) >> 23) & 0xFF) - 127;
  if (e < 1 - bias) e = 1 - bias;
  // units = a * 2^(M - e): exact scaling by a power of two (two steps keep the factor normal)
  const int k = M - e, k1 = k / 2, k2 = k - k1;
  const float units = a * as_float((u32)(127 + k1) << 23) * as_float((u32)(127 + k2) << 23);
  const float below = (float)(u32)units;
  const float rest = units - below;
  u32 down = (u32)below, up = down + 1u;
  auto code_of = [&](u32 u) { return u >= (1u << M) ? (((u32)(e + bias) << M) + (u - (1u << M))) : u; };
  u32 code;
  if (rest < 0.5f) code = code_of(down);
  else if (rest > 0.5f) code = code_of(up);
  else code = (code_of(down) & 1u) == 0 ? code_of(down) : code_of(up);
  return sign | (code > max_code ? max_code : code);
}

// ---- packed pairs: two f16 or bf16 values in one 32-bit word, low half first
AB_DEVICE u32 funnel_r(u32 lo, u32 hi, int shift) {  // bits [shift, shift + 32) of hi:lo, 0 <= shift < 32
#if defined(__CUDA_ARCH__)
  u32 d;
  asm("shf.r.clamp.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(lo), "r"(hi), "r"(shift));
  return d;
#else
  AB_COUNT();
  return shift == 0 ? lo : (lo >> shift) | (hi << (32 - shift));
#endif
}
AB_DEVICE u32 hsub2(u32 a, u32 b) {
#if defined(__CUDA_ARCH__)
  u32 d;
  asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
#else
  AB_COUNT();
  return f32_to_f16(f16_to_f32(a & 0xFFFF) - f16_to_f32(b & 0xFFFF)) |
         (f32_to_f16(f16_to_f32(a >> 16) - f16_to_f32(b >> 16)) << 16);
#endif
}
AB_DEVICE u32 hmul2(u32 a, u32 b) {
#if defined(__CUDA_ARCH__)
  u32 d;
  asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
#else
  AB_COUNT();
  return f32_to_f16(f16_to_f32(a & 0xFFFF) * f16_to_f32(b & 0xFFFF)) |
         (f32_to_f16(f16_to_f32(a >> 16) * f16_to_f32(b >> 16)) << 16);
#endif
}
AB_DEVICE u32 hmin2(u32 a, u32 b) {  // f16x2 minimum per half (a NaN half gives the other operand's)
#if defined(__CUDA_ARCH__)
  u32 d;
  asm("min.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
#else
  AB_COUNT();
  u32 out = 0;
  for (int h = 0; h < 32; h += 16) {
    const u32 x = (a >> h) & 0xFFFFu, y = (b >> h) & 0xFFFFu;
    const float fx = f16_to_f32(x), fy = f16_to_f32(y);
    const u32 m = fx != fx ? y : fy != fy ? x : fy < fx ? y : fx < fy ? x : (x | y);  // min(+0, -0) = -0
    out |= m << h;
  }
  return out;
#endif
}
AB_DEVICE u32 bfma2(u32 a, u32 b, u32 c) {  // bf16x2 a * b + c, rounded once per half
#if defined(__CUDA_ARCH__)
  u32 d;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
#else
  AB_COUNT();
  return fma_bf16(a & 0xFFFF, b & 0xFFFF, c & 0xFFFF) | (fma_bf16(a >> 16, b >> 16, c >> 16) << 16);
#endif
}
// Packed f16x2 / bf16x2 add, sub, mul and fma, each half rounded once to nearest even (without flushing
// subnormals): the same values as computing the half in f32 and rounding (f32 holds every exact sum and
// product of two 16-bit values to within the rounding needed). bf16x2 add/sub/mul go through fma with
// 1.0 / -1.0 / -0.0, which sm_80 has.
AB_DEVICE u32 hadd2(u32 a, u32 b) {
#if defined(__CUDA_ARCH__)
  u32 d;
  asm("add.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
#else
  AB_COUNT();
  return f32_to_f16(f16_to_f32(a & 0xFFFF) + f16_to_f32(b & 0xFFFF)) |
         (f32_to_f16(f16_to_f32(a >> 16) + f16_to_f32(b >> 16)) << 16);
#endif
}
AB_DEVICE u32 hfma2(u32 a, u32 b, u32 c) {
#if defined(__CUDA_ARCH__)
  u32 d;
  asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
#else
  AB_COUNT();
  return fma_f16(a & 0xFFFF, b & 0xFFFF, c & 0xFFFF) | (fma_f16(a >> 16, b >> 16, c >> 16) << 16);
#endif
}
AB_DEVICE u32 badd2(u32 a, u32 b) { return bfma2(a, 0x3F803F80u, b); }
AB_DEVICE u32 bsub2(u32 a, u32 b) { return bfma2(b, 0xBF80BF80u, a); }
AB_DEVICE u32 bmul2(u32 a, u32 b) { return bfma2(a, b, 0x80008000u); }
AB_DEVICE u32 pack_f16x2(float lo, float hi) {
#if defined(__CUDA_ARCH__)
  u32 d;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));  // the first source goes to the upper half
  return d;
#else
  AB_COUNT();
  return f32_to_f16(lo) | (f32_to_f16(hi) << 16);
#endif
}

AB_DEVICE u32 pack_bf16x2(float lo, float hi) {
#if defined(__CUDA_ARCH__)
  u32 d;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));  // the first source goes to the upper half
  return d;
#else
  AB_COUNT();
  return f32_to_bf16(lo) | (f32_to_bf16(hi) << 16);
#endif
}
// Per 16-bit half: where (x & mask) == value, replace d's half by `replacement` (keeping x's sign bit 15).
AB_DEVICE u32 replace_halves(u32 d, u32 x, u32 mask, u32 value, u32 replacement) {
  u32 out = d;
  if (((x & mask) & 0xFFFFu) == value) out = (out & 0xFFFF0000u) | (x & 0x8000u) | replacement;
  if (((x >> 16) & mask) == value) out = (out & 0x0000FFFFu) | ((x & 0x80000000u)) | (replacement << 16);
  return out;
}

// Per half: 0xFFFF where x's `mask` bits (a field ending below bit 15) are all ones, else 0. Adding one unit
// of the field carries into bit 15 exactly then; a sign-replicating prmt spreads that bit over the half.
AB_DEVICE u32 all_ones_halves(u32 x, u32 mask, u32 unit) { return prmt((x & mask) + unit, 0u, 0xBB99u); }

// Per half: NaN (the `nan` pattern OR'd in, sign kept) where x's `mag` bits are all ones.
AB_DEVICE u32 nan_where_all_ones(u32 d, u32 x, u32 mag, u32 unit, u32 nan) {
  return lop3<0xf8>(d, all_ones_halves(x, mag, unit), nan);
}

// Per half: d with the `clear` bits cleared where x's `mask` bits are all ones.
AB_DEVICE u32 clear_where_all_ones(u32 d, u32 x, u32 mask, u32 unit, u32 clear) {
  return lop3<0x70>(d, all_ones_halves(x, mask, unit), clear);
}

AB_DEVICE u32 shfl_xor(u32 v, int lane_mask) {
#if defined(__CUDA_ARCH__)
  return __shfl_xor_sync(0xFFFFFFFFu, v, lane_mask);
#else
  return ab_sim_shfl_xor(v, lane_mask);
#endif
}

// The shared-memory XOR swizzle (layout/shared_layout.h).
// Shared offsets are 32-bit (every shared address is below 2^31).
template <int BITS, int BASE, int SHIFT>
AB_DEVICE i32 swizzle(i32 x) {
  return BITS == 0 ? x : x ^ ((x & (((1 << BITS) - 1) << (BASE + SHIFT))) >> SHIFT);
}

// ---- global memory: BYTES in {1, 2, 4, 8, 16}, addresses aligned to BYTES
template <int BYTES>
AB_DEVICE void ld_global(u32* dst, const void* src) {
#if defined(__CUDA_ARCH__)
  if (BYTES == 16) {
    asm volatile("ld.global.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(dst[0]), "=r"(dst[1]), "=r"(dst[2]), "=r"(dst[3]) : "l"(src));
  } else if (BYTES == 8) {
    asm volatile("ld.global.v2.u32 {%0, %1}, [%2];" : "=r"(dst[0]), "=r"(dst[1]) : "l"(src));
  } else if (BYTES == 4) {
    asm volatile("ld.global.u32 %0, [%1];" : "=r"(dst[0]) : "l"(src));
  } else if (BYTES == 2) {
    unsigned short h;
    asm volatile("ld.global.u16 %0, [%1];" : "=h"(h) : "l"(src));
    dst[0] = h;
  } else {
    unsigned short b;
    asm volatile("ld.global.u8 %0, [%1];" : "=h"(b) : "l"(src));
    dst[0] = b & 0xFFu;
  }
#else
  ab_sim_access(src, BYTES, BYTES, kRead);
  if (BYTES >= 4) std::memcpy(dst, src, BYTES);
  else { dst[0] = 0; std::memcpy(dst, src, BYTES); }
#endif
}
template <int BYTES>
AB_DEVICE void st_global(void* dst, const u32* src) {
#if defined(__CUDA_ARCH__)
  if (BYTES == 16) {
    asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" :: "l"(dst), "r"(src[0]), "r"(src[1]), "r"(src[2]), "r"(src[3]) : "memory");
  } else if (BYTES == 8) {
    asm volatile("st.global.v2.u32 [%0], {%1, %2};" :: "l"(dst), "r"(src[0]), "r"(src[1]) : "memory");
  } else if (BYTES == 4) {
    asm volatile("st.global.u32 [%0], %1;" :: "l"(dst), "r"(src[0]) : "memory");
  } else if (BYTES == 2) {
    asm volatile("st.global.u16 [%0], %1;" :: "l"(dst), "h"((unsigned short)src[0]) : "memory");
  } else {
    asm volatile("st.global.u8 [%0], %1;" :: "l"(dst), "h"((unsigned short)(src[0] & 0xFF)) : "memory");
  }
#else
  ab_sim_access(dst, BYTES, BYTES, kWrite);
  std::memcpy(dst, src, BYTES);
#endif
}
// Sub-byte stores that may share a byte with other threads' codes: an atomic read-modify-write of the
// aligned 32-bit word(s) holding bits [bit, bit + bits) of `base` (global or shared, bits <= 8).
// On the GPU the word is whole (allocations are 256-byte granular); on the CPU only the bytes the bits
// touch are written, so a buffer sized to its last code is never overrun.
AB_DEVICE void store_bits_word(u8* base, i64 bit, int bits, u32 code) {
  const int shift = (int)(bit & 31);
  const u32 mask = ((1u << bits) - 1u) << shift;
#if defined(__CUDA_ARCH__)
  u32* word = (u32*)(base + ((bit >> 5) << 2));
  atomicAnd(word, ~mask);
  atomicOr(word, (code << shift) & mask);
#else
  u8* word = base + ((bit >> 5) << 2);
  const int first = shift / 8, last = (shift + bits - 1) / 8;
  ab_sim_access(word + first, last - first + 1, 1, kAtomicWrite);
  for (int b = first; b <= last; ++b) {
    const u8 m = (u8)(mask >> (8 * b));
    word[b] = (u8)((word[b] & ~m) | ((u8)(((code << shift) & mask) >> (8 * b)) & m));
  }
#endif
}
AB_DEVICE void store_bits(u8* base, i64 bit, int bits, u32 code) {
  const int in_first = 32 - (int)(bit & 31);
  if (bits <= in_first) {
    store_bits_word(base, bit, bits, code);
  } else {  // straddles two words
    store_bits_word(base, bit, in_first, code & ((1u << in_first) - 1u));
    store_bits_word(base, bit + in_first, bits - in_first, code >> in_first);
  }
}
AB_DEVICE u32 load_bits(const u8* base, i64 bit, int bits) {
  const u8* p = base + (bit >> 3);
#if !defined(__CUDA_ARCH__)
  ab_sim_access(p, (int)(((bit & 7) + bits + 7) >> 3), 1, kRead);
#endif
  u32 v = 0;
  const int span = (int)(((bit & 7) + bits + 7) >> 3);
  for (int i = 0; i < span; ++i) v |= (u32)p[i] << (8 * i);
  return (v >> (bit & 7)) & ((1u << bits) - 1u);
}

// ---- shared memory (generic addressing of the dynamic shared buffer)
// 8 and 16 bytes move as one vector access: the emitter proved the alignment (the simulator checks it);
// word loops were split into 4-byte accesses where the compiler could not see it (a skewed weight stage).
template <int BYTES>
AB_DEVICE void ld_shared(u32* dst, const void* src) {
#if !defined(__CUDA_ARCH__)
  ab_sim_access(src, BYTES, BYTES, kRead);
#else
  if (BYTES == 16) {
    const uint4 v = *(const uint4*)src;
    dst[0] = v.x, dst[1] = v.y, dst[2] = v.z, dst[3] = v.w;
    return;
  }
  if (BYTES == 8) {
    const uint2 v = *(const uint2*)src;
    dst[0] = v.x, dst[1] = v.y;
    return;
  }
#endif
  if (BYTES >= 4) {
    for (int i = 0; i < BYTES / 4; ++i) dst[i] = ((const u32*)src)[i];
  } else if (BYTES == 2) {
    dst[0] = *(const unsigned short*)src;
  } else {
    dst[0] = *(const u8*)src;
  }
}
template <int BYTES>
AB_DEVICE void st_shared(void* dst, const u32* src) {
#if !defined(__CUDA_ARCH__)
  ab_sim_access(dst, BYTES, BYTES, kWrite);
#else
  if (BYTES == 16) {
    *(uint4*)dst = make_uint4(src[0], src[1], src[2], src[3]);
    return;
  }
  if (BYTES == 8) {
    *(uint2*)dst = make_uint2(src[0], src[1]);
    return;
  }
#endif
  if (BYTES >= 4) {
    for (int i = 0; i < BYTES / 4; ++i) ((u32*)dst)[i] = src[i];
  } else if (BYTES == 2) {
    *(unsigned short*)dst = (unsigned short)src[0];
  } else {
    *(u8*)dst = (u8)src[0];
  }
}

// ---- asynchronous copies: BYTES in {4, 8, 16}; src_bytes < BYTES zero-fills the rest
template <int BYTES>
AB_DEVICE void cp_async(void* smem, const void* gmem, int src_bytes) {
#if defined(__CUDA_ARCH__)
  const u32 dst = (u32)__cvta_generic_to_shared(smem);
  if (BYTES == 16)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(dst), "l"(gmem), "r"(src_bytes) : "memory");
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;" :: "r"(dst), "l"(gmem), "n"(BYTES), "r"(src_bytes) : "memory");
#else
  ab_sim_cp_async(smem, gmem, BYTES, src_bytes);
#endif
}
AB_DEVICE void cp_async_commit() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.commit_group;" ::: "memory");
#else
  ab_sim_cp_async_commit();
#endif
}
template <int N>
AB_DEVICE void cp_async_wait() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory");
#else
  ab_sim_cp_async_wait(N);
#endif
}

// ---- ldmatrix: COUNT 8x8 b16 matrices; this lane passes the row address of matrix lane / 8
template <int COUNT, bool TRANS>
AB_DEVICE void ldmatrix(u32* d, const void* row) {
#if defined(__CUDA_ARCH__)
  const u32 a = (u32)__cvta_generic_to_shared(row);
  if (COUNT == 4 && !TRANS) asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3]) : "r"(a));
  if (COUNT == 4 && TRANS) asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3]) : "r"(a));
  if (COUNT == 2 && !TRANS) asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];" : "=r"(d[0]), "=r"(d[1]) : "r"(a));
  if (COUNT == 2 && TRANS) asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];" : "=r"(d[0]), "=r"(d[1]) : "r"(a));
  if (COUNT == 1 && !TRANS) asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];" : "=r"(d[0]) : "r"(a));
  if (COUNT == 1 && TRANS) asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];" : "=r"(d[0]) : "r"(a));
#else
  ab_sim_ldmatrix(d, row, COUNT, TRANS);
#endif
}

// ---- tensor cores: d = a . b + c on one warp; fragments as in the PTX ISA
AB_DEVICE void mma_m16n8k16_f32_f16(u32* d, const u32* a, const u32* b, const u32* c) {
#if defined(__CUDA_ARCH__)
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]));
#else
  ab_sim_mma("m16n8k16.f32.f16.f16.f32", d, a, b, c);
#endif
}
AB_DEVICE void mma_m16n8k16_f32_bf16(u32* d, const u32* a, const u32* b, const u32* c) {
#if defined(__CUDA_ARCH__)
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]));
#else
  ab_sim_mma("m16n8k16.f32.bf16.bf16.f32", d, a, b, c);
#endif
}
AB_DEVICE void mma_m16n8k16_f16_f16(u32* d, const u32* a, const u32* b, const u32* c) {
#if defined(__CUDA_ARCH__)
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f16.f16.f16.f16 {%0,%1}, {%2,%3,%4,%5}, {%6,%7}, {%8,%9};"
               : "=r"(d[0]), "=r"(d[1])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(c[0]), "r"(c[1]));
#else
  ab_sim_mma("m16n8k16.f16.f16.f16.f16", d, a, b, c);
#endif
}
AB_DEVICE void mma_m16n8k32_s32_s8(u32* d, const u32* a, const u32* b, const u32* c) {
#if defined(__CUDA_ARCH__)
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]));
#else
  ab_sim_mma("m16n8k32.s32.s8.s8.s32", d, a, b, c);
#endif
}
AB_DEVICE void mma_m16n8k32_s32_u8(u32* d, const u32* a, const u32* b, const u32* c) {
#if defined(__CUDA_ARCH__)
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.u8.u8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]));
#else
  ab_sim_mma("m16n8k32.s32.u8.u8.s32", d, a, b, c);
#endif
}

}  // namespace ab
