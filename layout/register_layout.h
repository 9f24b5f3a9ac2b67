// Register layouts: how a tile of logical shape S is spread over T threads x n local slots.
//
// Each logical dimension is split into modes (sizes whose product is the dimension; the index is their
// row-major combination, first mode most significant). Every mode sits either in the spatial list (its
// coordinates form the thread index, row-major over the list) or in the local list (they form the local
// slot index). The spatial list may also hold replication modes: threads differing only in those hold the
// same data. DESIGN.md "Layouts" is the specification.
//
// Laws (tested literally over seeded random layouts in tests/layout/test_register_layout.cpp):
//   compose:     (A * B) * C == A * (B * C);  (A * B)(i) = (tA * T_B + tB, lA * n_B + lB) for
//                i = iA * shape(B) + iB elementwise.
//   divide:      (A * B) / B == A;  divide(A, B) * B == A whenever divide succeeds.
//   map/inverse: map is a bijection between logical indices and (thread modulo replication, local);
//                logical_index(map(i)) == i; every (thread, local) holds exactly one logical element.
//   reduce:      reduce(A, d) places index i (with i_d = 0) on A's thread of any i' differing in dim d,
//                modulo replication, at A's local slot with dim d's local coordinates removed.
//   reshape:     reshape(A, s)(i) == A(unflatten(flatten(i, s), shape(A))).
//   canonicalize, permute and printing preserve the map; equality is equality of maps.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace anybit::layout {

using Shape = std::vector<std::int64_t>;

struct Mode {
  std::int64_t size = 1;
  int dim = -1;  // logical dimension, or -1 for a replication mode
  friend bool operator==(const Mode&, const Mode&) = default;
};

// Where one logical element lives: its local slot and its first thread (replication coordinates zero).
struct Placement {
  std::int64_t thread = 0;
  std::int64_t local = 0;
  friend bool operator==(const Placement&, const Placement&) = default;
};

class RegisterLayout {
 public:
  // The empty rank-0 layout: one element in one thread.
  RegisterLayout() = default;
  // General constructor; validates that every dimension mode is in exactly one dimension list and in
  // exactly one of spatial/local, and that replication modes are only spatial (anybit::Error otherwise).
  RegisterLayout(int rank, std::vector<Mode> modes, std::vector<std::vector<int>> dim_modes,
                 std::vector<int> spatial, std::vector<int> local);

  int rank() const { return rank_; }
  Shape shape() const;
  std::int64_t size() const;  // number of logical elements
  std::int64_t num_threads() const;
  std::int64_t local_size() const;
  std::int64_t replication() const;  // product of replication modes

  const std::vector<Mode>& modes() const { return modes_; }
  const std::vector<std::vector<int>>& dim_modes() const { return dim_modes_; }
  const std::vector<int>& spatial() const { return spatial_; }
  const std::vector<int>& local() const { return local_; }

  Placement map(std::span<const std::int64_t> index) const;
  // Every thread holding the element (replicas included), ascending.
  std::vector<std::int64_t> threads_of(std::span<const std::int64_t> index) const;
  // The logical element at (thread, local); replication coordinates of the thread are ignored.
  Shape logical_index(std::int64_t thread, std::int64_t local) const;

  // Same map (shape, threads, locals and every (thread, local) -> index).
  friend bool operator==(const RegisterLayout& a, const RegisterLayout& b);
  // Same representation, mode for mode.
  bool same_structure(const RegisterLayout& other) const;

  std::string to_string() const;  // canonical text, see layout_text.cpp

 private:
  int rank_ = 0;
  std::vector<Mode> modes_;
  std::vector<std::vector<int>> dim_modes_;
  std::vector<int> spatial_;
  std::vector<int> local_;
};

// Primitives (DESIGN.md). Sizes of 1 add no mode.
RegisterLayout local(const Shape& sizes);
RegisterLayout spatial(const Shape& sizes);
RegisterLayout column_local(const Shape& sizes);
RegisterLayout column_spatial(const Shape& sizes);
RegisterLayout replicated(std::int64_t factor);  // rank 0; composes with any rank

RegisterLayout compose(const RegisterLayout& a, const RegisterLayout& b);
inline RegisterLayout operator*(const RegisterLayout& a, const RegisterLayout& b) { return compose(a, b); }
// The R with R * b == a; anybit::Error naming both layouts when there is none.
RegisterLayout divide(const RegisterLayout& a, const RegisterLayout& b);
inline RegisterLayout operator/(const RegisterLayout& a, const RegisterLayout& b) { return divide(a, b); }
bool divides(const RegisterLayout& a, const RegisterLayout& b);  // a / b exists
// Keeps the rank: reduced dims get size 1, their spatial modes become replication, local modes vanish.
RegisterLayout reduce(const RegisterLayout& a, std::span<const int> dims);
RegisterLayout reshape(const RegisterLayout& a, const Shape& shape);
RegisterLayout flatten(const RegisterLayout& a);
// Result dimension i is a's dimension perm[i].
RegisterLayout permute(const RegisterLayout& a, std::span<const int> perm);
// Drops size-1 modes, merges neighbours that are adjacent in both their dimension and their list, and
// numbers modes in dimension order; equal maps give structurally equal canonical layouts.
RegisterLayout canonicalize(const RegisterLayout& a);

// Text form (layout_text.cpp): products of primitives where possible, e.g.
//   column_local(2,2) * spatial(8,4) * local(1,2)
// and the general form otherwise:
//   layout(dims: (4,8); spatial: m1 m0; local: )
// parse_layout accepts both, plus '/' and parentheses. Errors give the column and what was expected.
RegisterLayout parse_layout(std::string_view text);

// Row-major linear index of `index` in `shape`, and its inverse.
std::int64_t linearize(std::span<const std::int64_t> index, std::span<const std::int64_t> shape);
Shape delinearize(std::int64_t linear, std::span<const std::int64_t> shape);

}  // namespace anybit::layout
