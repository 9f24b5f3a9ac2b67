// The emitter's shared state (internal to backend_cuda/emit*.cpp).
#pragma once

#include <fmt/format.h>

#include <map>
#include <set>

#include "backend_cuda/emit.h"
#include "isa/error.h"
#include "vm/verifier.h"

namespace anybit::backend_cuda::detail {

using isa::DataType;
using isa::Expr;
using isa::Instruction;
using isa::TensorType;
using layout::RegisterLayout;
using layout::Shape;

class Emitter {
 public:
  Emitter(const vm::Program& p, const EmitOptions& options);
  EmittedKernel run();

  // emit.cpp
  template <typename... Args>
  void line(fmt::format_string<Args...> f, Args&&... args) {
    out_ += std::string(2 * indent_, ' ') + fmt::format(f, std::forward<Args>(args)...) + "\n";
  }
  // C expression of a scalar; computed in 32 bits where the range analysis proves every step fits.
  std::string expr(const Expr& e) const;
  struct CExpr {
    std::string text;
    bool is32;
  };
  CExpr typed_expr(const Expr& e) const;
  isa::Interval range(const Expr& e) const;
  // Whether index arithmetic into global view `view` at `offset` for a tile of `shape` may be 32-bit: the
  // view's every byte (bit, below a byte) offset fits, and so do the indices.
  bool narrow_indices(const std::string& view, const std::vector<Expr>& offset, const Shape& shape) const;
  // A kernel-wide register holding `value` (declared at the top, opaque to the compilers): for constants
  // that must sit in a register operand (a lop3's third input, a packed fma's multiplier).
  std::string constant_register(std::uint32_t value);
  // A kernel-wide array of such registers, for a whole mma operand fragment of constants: its own
  // registers, which the register allocator can place as the mma needs them (built from shared
  // constant_registers, every use had copied them into place).
  std::string constant_fragment(const std::vector<std::uint32_t>& words);
  // Declares a scalar `int` when its range fits, else 64-bit; records the range.
  std::string scalar_type(const std::string& vm_name, const isa::Interval& r);
  std::string scalar_name(const std::string& vm_name) const;
  static std::string value(const std::string& vm_name) { return "t_" + vm_name; }
  const TensorType& type(const std::string& vm_name) const { return typing_.values.at(vm_name); }
  [[noreturn]] void unsupported(const Instruction& inst, const std::string& why) const;
  // Per-dimension C expressions of the thread-dependent part of a tile's indices (`tid` based).
  std::vector<std::string> thread_base(const RegisterLayout& l, const std::string& tid = "tid") const;
  // C condition true on the one replica of each element (threads whose replication coordinates are 0).
  std::string first_replica(const RegisterLayout& l) const;
  static int words(const TensorType& t);
  void declare_tile(const std::string& vm_name, const TensorType& t);

  // emit_memory.cpp
  void load_global(const Instruction& inst);
  void store_global(const Instruction& inst);
  void load_shared(const Instruction& inst);
  void store_shared(const Instruction& inst);
  void copy_async(const Instruction& inst);

  // emit_cast.cpp
  void cast(const Instruction& inst);
  void vector_cast(const Instruction& inst, const std::vector<std::int64_t>& source_slot, bool widen = false);
  void scalar_cast(const Instruction& inst, const std::vector<std::int64_t>& source_slot);
  void small_float_to_f32(const Instruction& inst, const std::vector<std::int64_t>& source_slot);

  // emit_compute.cpp
  void elementwise(const Instruction& inst);
  void reduce(const Instruction& inst);
  void dot(const Instruction& inst);
  // The mma a dot issues, per accumulator tile lc and K step k: the operands' fragment words.
  struct DotStep {
    std::int64_t lc, k;
    std::vector<std::int64_t> a, b;
    bool operator==(const DotStep&) const = default;
  };
  std::vector<DotStep> dot_plan(const Instruction& inst) const;
  // For B-side offsets: tile lc's partner (-1: none), tiles that multiply the same A words at every step.
  // The corrections of a pair come from one mma whose B fragment holds the first tile's offsets in even
  // columns and the second's in odd ones (a constant per lane): every column of a correction is the same
  // (the offsets depend on k only), so each lane finds both tiles' corrections in its two columns.
  static std::vector<std::int64_t> correction_pairs(const std::vector<DotStep>& plan);
  static std::string decode_f32(DataType t, const std::string& code);
  static std::string encode_f32(DataType t, const std::string& value);

  const vm::Program& program_;
  const EmitOptions& options_;
  vm::Typing typing_;
  passes::Divisibility div_;
  std::map<std::string, isa::Interval> ranges_;  // scalars in scope
  std::set<std::string> scalars32_;               // scalars declared `int`
  std::set<std::string> narrow_views_;            // global views addressed with 32-bit offsets
  std::set<std::uint32_t> constants_;             // constant_register values
  std::map<std::vector<std::uint32_t>, std::string> fragments_;  // constant_fragment arrays
  // Offset decodes (emit_cast.cpp, dot()): integer -> f16/bf16 casts whose result feeds nothing but one
  // operand of a dot with an f32 accumulator (through views) may leave the magic number in each decoded
  // value; such a cast records, per result register (a pair), the negated offset of its halves (0: none),
  // views pass the record on, and the dot cancels the offsets with one more mma on constant fragments.
  // The corrections accumulate apart, in a shadow of the accumulator (t_<name>_o, zero at its declaration),
  // so that they do not lengthen the chain of dependent mma; any other use of the accumulator first adds
  // the shadow in (flush_shadows).
  std::set<std::string> offset_casts_;
  std::map<std::string, std::vector<std::uint32_t>> offsets_;
  std::set<std::string> shadowed_;
  std::map<std::string, std::vector<std::int64_t>> shadow_pairs_;  // accumulator -> correction_pairs (all its dots agree)
  std::map<std::pair<std::vector<std::uint32_t>, std::vector<std::uint32_t>>, std::string> lane_fragments_;
  // A kernel-wide fragment whose words are `even` in lanes of even groupID (lane / 4), `odd` in the others.
  std::string lane_fragment(const std::vector<std::uint32_t>& even, const std::vector<std::uint32_t>& odd);
  void find_offset_casts();
  void flush_shadows(const Instruction& inst);
  std::size_t constants_at_ = 0;                  // where in out_ their declarations go
  std::string out_;
  int indent_ = 0;
  std::vector<std::string> fallbacks_;
  std::int64_t scratch_bytes_ = 0;
  std::vector<std::string> instructions_;  // shared memory the kernel needs beyond the plan (reduction scratch)

 private:
  void body(const vm::Body& b);
  void instruction(const Instruction& inst);
};

}  // namespace anybit::backend_cuda::detail
