#include "layout/register_layout.h"

#include <algorithm>
#include <numeric>

#include "isa/error.h"

namespace anybit::layout {

namespace {

// Largest size of any product in a layout (elements, threads, locals): keeps index arithmetic far from
// int64 overflow for every layout that can be constructed.
constexpr std::int64_t kMaxLayoutProduct = std::int64_t{1} << 40;

// The mutable representation every operation edits before building a validated RegisterLayout.
struct Raw {
  int rank = 0;
  std::vector<Mode> modes;
  std::vector<std::vector<int>> dims;
  std::vector<int> spatial, local;

  explicit Raw(const RegisterLayout& l)
      : rank(l.rank()), modes(l.modes()), dims(l.dim_modes()), spatial(l.spatial()), local(l.local()) {}
  Raw(int r) : rank(r), dims(r) {}

  int add(std::int64_t size, int dim) {
    modes.push_back({size, dim});
    return static_cast<int>(modes.size()) - 1;
  }
  std::vector<int>& list_of(int m) {
    return std::find(spatial.begin(), spatial.end(), m) != spatial.end() ? spatial : local;
  }
  // Splits mode m into (size / minor_size, minor_size); m keeps the major part. Returns the minor mode,
  // placed right after m in its dimension list and in its spatial/local list, which preserves the map.
  int split(int m, std::int64_t minor_size) {
    const int n = add(minor_size, modes[m].dim);
    modes[m].size /= minor_size;
    if (modes[m].dim >= 0) {
      auto& d = dims[modes[m].dim];
      d.insert(std::find(d.begin(), d.end(), m) + 1, n);
    }
    auto& l = list_of(m);
    l.insert(std::find(l.begin(), l.end(), m) + 1, n);
    return n;
  }
  // Drops unreferenced modes and numbers the rest in dimension order, replication last (spatial order).
  RegisterLayout build() const {
    std::vector<int> order;
    for (const auto& d : dims) order.insert(order.end(), d.begin(), d.end());
    for (int m : spatial)
      if (modes[m].dim < 0) order.push_back(m);
    std::vector<int> renumber(modes.size(), -1);
    std::vector<Mode> out_modes;
    for (int m : order) {
      renumber[m] = static_cast<int>(out_modes.size());
      out_modes.push_back(modes[m]);
    }
    auto remap = [&](const std::vector<int>& list) {
      std::vector<int> out;
      for (int m : list) out.push_back(renumber[m]);
      return out;
    };
    std::vector<std::vector<int>> out_dims;
    for (const auto& d : dims) out_dims.push_back(remap(d));
    return RegisterLayout(rank, out_modes, out_dims, remap(spatial), remap(local));
  }
};

Raw promoted(const RegisterLayout& l, int rank) {
  Raw r(l);
  if (r.rank == 0 && rank > 0) {
    r.rank = rank;
    r.dims.assign(rank, {});
  }
  return r;
}

std::int64_t product(const std::vector<Mode>& modes, const std::vector<int>& list) {
  std::int64_t p = 1;
  for (int m : list) p *= modes[m].size;
  return p;
}

RegisterLayout primitive(const Shape& sizes, bool is_spatial, bool column_major) {
  Raw r(static_cast<int>(sizes.size()));
  std::vector<int> order;
  for (std::size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] < 1)
      throw Error(fmt::format("layout primitive sizes must be >= 1, got {} in dimension {}", sizes[d], d));
    if (sizes[d] == 1) continue;
    const int m = r.add(sizes[d], static_cast<int>(d));
    r.dims[d].push_back(m);
    order.push_back(m);
  }
  if (column_major) std::reverse(order.begin(), order.end());
  (is_spatial ? r.spatial : r.local) = order;
  return r.build();
}

std::string layout_error(const RegisterLayout& a, const RegisterLayout& b, const std::string& why) {
  return fmt::format("layout {} is not divisible by {}: {}", a.to_string(), b.to_string(), why);
}

}  // namespace

RegisterLayout::RegisterLayout(int rank, std::vector<Mode> modes, std::vector<std::vector<int>> dim_modes,
                               std::vector<int> spatial, std::vector<int> local)
    : rank_(rank), modes_(std::move(modes)), dim_modes_(std::move(dim_modes)), spatial_(std::move(spatial)),
      local_(std::move(local)) {
  if (rank_ < 0 || static_cast<int>(dim_modes_.size()) != rank_)
    throw Error(fmt::format("layout of rank {} needs {} dimension lists, has {}", rank_, rank_,
                            dim_modes_.size()));
  const int n = static_cast<int>(modes_.size());
  std::vector<int> in_dim(n, 0), in_list(n, 0);
  auto check_index = [&](int m) {
    if (m < 0 || m >= n) throw Error(fmt::format("layout refers to mode m{}, but has only {} modes", m, n));
  };
  for (int d = 0; d < rank_; ++d)
    for (int m : dim_modes_[d]) {
      check_index(m);
      if (modes_[m].dim != d)
        throw Error(fmt::format("layout mode m{} is listed in dimension {} but belongs to {}", m, d,
                                modes_[m].dim));
      ++in_dim[m];
    }
  for (int m : spatial_) check_index(m), ++in_list[m];
  for (int m : local_) {
    check_index(m), ++in_list[m];
    if (modes_[m].dim < 0) throw Error(fmt::format("replication mode m{} cannot be local", m));
  }
  for (int m = 0; m < n; ++m) {
    if (modes_[m].size < 1) throw Error(fmt::format("layout mode m{} has size {} (must be >= 1)", m, modes_[m].size));
    if (modes_[m].dim >= rank_) throw Error(fmt::format("layout mode m{} names dimension {} of a rank-{} layout", m, modes_[m].dim, rank_));
    if (in_list[m] != 1)
      throw Error(fmt::format("layout mode m{} must appear exactly once in spatial or local, appears {} times", m,
                              in_list[m]));
    if (modes_[m].dim >= 0 && in_dim[m] != 1)
      throw Error(fmt::format("layout mode m{} must appear exactly once in its dimension, appears {} times", m,
                              in_dim[m]));
  }
  std::int64_t total = 1;
  for (const Mode& m : modes_) {
    if (m.size > kMaxLayoutProduct || total > kMaxLayoutProduct / m.size)
      throw Error(fmt::format("layout too large: the product of its modes exceeds 2^40"));
    total *= m.size;
  }
}

Shape RegisterLayout::shape() const {
  Shape s;
  for (const auto& d : dim_modes_) s.push_back(product(modes_, d));
  return s;
}
std::int64_t RegisterLayout::size() const {
  std::int64_t p = 1;
  for (auto s : shape()) p *= s;
  return p;
}
std::int64_t RegisterLayout::num_threads() const { return product(modes_, spatial_); }
std::int64_t RegisterLayout::local_size() const { return product(modes_, local_); }
std::int64_t RegisterLayout::replication() const {
  std::int64_t p = 1;
  for (int m : spatial_)
    if (modes_[m].dim < 0) p *= modes_[m].size;
  return p;
}

Placement RegisterLayout::map(std::span<const std::int64_t> index) const {
  ANYBIT_ASSERT(static_cast<int>(index.size()) == rank_, "index of rank {} into a rank-{} layout", index.size(),
                rank_);
  std::vector<std::int64_t> coord(modes_.size(), 0);
  for (int d = 0; d < rank_; ++d) {
    std::int64_t i = index[d];
    for (auto it = dim_modes_[d].rbegin(); it != dim_modes_[d].rend(); ++it) {
      coord[*it] = i % modes_[*it].size;
      i /= modes_[*it].size;
    }
    ANYBIT_ASSERT(i == 0 && index[d] >= 0, "index {} out of range in dimension {}", index[d], d);
  }
  Placement p;
  for (int m : spatial_) p.thread = p.thread * modes_[m].size + coord[m];
  for (int m : local_) p.local = p.local * modes_[m].size + coord[m];
  return p;
}

std::vector<std::int64_t> RegisterLayout::threads_of(std::span<const std::int64_t> index) const {
  std::vector<std::int64_t> threads = {map(index).thread};
  std::int64_t stride = 1;
  for (auto it = spatial_.rbegin(); it != spatial_.rend(); ++it) {
    if (modes_[*it].dim < 0) {
      std::vector<std::int64_t> more;
      for (std::int64_t r = 0; r < modes_[*it].size; ++r)
        for (auto t : threads) more.push_back(t + r * stride);
      threads = std::move(more);
    }
    stride *= modes_[*it].size;
  }
  std::sort(threads.begin(), threads.end());
  return threads;
}

Shape RegisterLayout::logical_index(std::int64_t thread, std::int64_t local) const {
  ANYBIT_ASSERT(thread >= 0 && thread < num_threads() && local >= 0 && local < local_size(),
                "(thread {}, local {}) outside a layout of {} threads x {} locals", thread, local, num_threads(),
                local_size());
  std::vector<std::int64_t> coord(modes_.size(), 0);
  for (auto it = spatial_.rbegin(); it != spatial_.rend(); ++it) {
    coord[*it] = thread % modes_[*it].size;
    thread /= modes_[*it].size;
  }
  for (auto it = local_.rbegin(); it != local_.rend(); ++it) {
    coord[*it] = local % modes_[*it].size;
    local /= modes_[*it].size;
  }
  Shape index(rank_, 0);
  for (int d = 0; d < rank_; ++d)
    for (int m : dim_modes_[d]) index[d] = index[d] * modes_[m].size + coord[m];
  return index;
}

bool operator==(const RegisterLayout& a, const RegisterLayout& b) {
  if (a.rank() != b.rank() || a.shape() != b.shape() || a.num_threads() != b.num_threads() ||
      a.local_size() != b.local_size())
    return false;
  // Canonical forms are unique per map, so equal structures settle it; otherwise compare the maps.
  if (canonicalize(a).same_structure(canonicalize(b))) return true;
  for (std::int64_t t = 0; t < a.num_threads(); ++t)
    for (std::int64_t l = 0; l < a.local_size(); ++l)
      if (a.logical_index(t, l) != b.logical_index(t, l)) return false;
  return true;
}

bool RegisterLayout::same_structure(const RegisterLayout& o) const {
  return rank_ == o.rank_ && modes_ == o.modes_ && dim_modes_ == o.dim_modes_ && spatial_ == o.spatial_ &&
         local_ == o.local_;
}

RegisterLayout local(const Shape& sizes) { return primitive(sizes, false, false); }
RegisterLayout spatial(const Shape& sizes) { return primitive(sizes, true, false); }
RegisterLayout column_local(const Shape& sizes) { return primitive(sizes, false, true); }
RegisterLayout column_spatial(const Shape& sizes) { return primitive(sizes, true, true); }
RegisterLayout replicated(std::int64_t factor) {
  if (factor < 1) throw Error(fmt::format("replicated({}) needs a factor >= 1", factor));
  Raw r(0);
  if (factor > 1) r.spatial.push_back(r.add(factor, -1));
  return r.build();
}

RegisterLayout compose(const RegisterLayout& a, const RegisterLayout& b) {
  const int rank = std::max(a.rank(), b.rank());
  Raw ra = promoted(a, rank), rb = promoted(b, rank);
  if (ra.rank != rb.rank)
    throw Error(fmt::format("cannot compose layouts of rank {} and {}: {} * {}", a.rank(), b.rank(),
                            a.to_string(), b.to_string()));
  const int offset = static_cast<int>(ra.modes.size());
  auto shifted = [&](const std::vector<int>& list) {
    std::vector<int> out;
    for (int m : list) out.push_back(m + offset);
    return out;
  };
  ra.modes.insert(ra.modes.end(), rb.modes.begin(), rb.modes.end());
  for (int d = 0; d < rank; ++d) {
    auto s = shifted(rb.dims[d]);
    ra.dims[d].insert(ra.dims[d].end(), s.begin(), s.end());
  }
  auto sp = shifted(rb.spatial), lo = shifted(rb.local);
  ra.spatial.insert(ra.spatial.end(), sp.begin(), sp.end());
  ra.local.insert(ra.local.end(), lo.begin(), lo.end());
  return ra.build();
}

RegisterLayout canonicalize(const RegisterLayout& l) {
  Raw r(l);
  auto drop = [&](std::vector<int>& list) {
    std::erase_if(list, [&](int m) { return r.modes[m].size == 1; });
  };
  for (auto& d : r.dims) drop(d);
  drop(r.spatial);
  drop(r.local);
  // Merge m1 (major) and m2 (minor) when they are adjacent, in this order, both in their dimension and in
  // their spatial/local list: the pair then acts as a single mode of size s1 * s2.
  auto adjacent_in = [](const std::vector<int>& list, int m1, int m2) {
    auto it = std::find(list.begin(), list.end(), m1);
    return it != list.end() && it + 1 != list.end() && *(it + 1) == m2;
  };
  for (bool merged = true; merged;) {
    merged = false;
    for (auto& d : r.dims)
      for (std::size_t j = 0; !merged && j + 1 < d.size(); ++j) {
        const int m1 = d[j], m2 = d[j + 1];
        auto& list = r.list_of(m1);
        if (!adjacent_in(list, m1, m2)) continue;
        r.modes[m1].size *= r.modes[m2].size;
        d.erase(d.begin() + j + 1);
        list.erase(std::find(list.begin(), list.end(), m2));
        merged = true;
      }
    for (std::size_t j = 0; !merged && j + 1 < r.spatial.size(); ++j) {
      const int m1 = r.spatial[j], m2 = r.spatial[j + 1];
      if (r.modes[m1].dim >= 0 || r.modes[m2].dim >= 0) continue;
      r.modes[m1].size *= r.modes[m2].size;
      r.spatial.erase(r.spatial.begin() + j + 1);
      merged = true;
    }
  }
  return r.build();
}

RegisterLayout divide(const RegisterLayout& a_in, const RegisterLayout& b_in) {
  const int rank = std::max(a_in.rank(), b_in.rank());
  Raw a = promoted(canonicalize(a_in), rank), b = promoted(canonicalize(b_in), rank);
  if (a.rank != b.rank) throw Error(layout_error(a_in, b_in, "ranks differ"));
  std::vector<int> match(b.modes.size(), -1);
  // Dimensions, minor modes first: b's modes must be the minor end of a's, after splitting a's modes.
  for (int d = 0; d < rank; ++d) {
    int pos = static_cast<int>(a.dims[d].size()) - 1;
    for (int j = static_cast<int>(b.dims[d].size()) - 1; j >= 0; --j) {
      const int bm = b.dims[d][j];
      const std::int64_t bsize = b.modes[bm].size;
      if (pos < 0) throw Error(layout_error(a_in, b_in, fmt::format("dimension {} is too small", d)));
      const int am = a.dims[d][pos];
      if (a.modes[am].size == bsize) {
        match[bm] = am;
        --pos;
      } else if (a.modes[am].size % bsize == 0) {
        match[bm] = a.split(am, bsize);
      } else {
        throw Error(layout_error(a_in, b_in,
                                 fmt::format("in dimension {} a mode of size {} cannot hold one of size {}", d,
                                             a.modes[am].size, bsize)));
      }
    }
  }
  // Thread index: b's spatial list (replication included) must be the minor end of a's.
  int pos = static_cast<int>(a.spatial.size()) - 1;
  for (int j = static_cast<int>(b.spatial.size()) - 1; j >= 0; --j, --pos) {
    const int bm = b.spatial[j];
    if (pos < 0) throw Error(layout_error(a_in, b_in, "too few threads"));
    const int am = a.spatial[pos];
    if (b.modes[bm].dim >= 0) {
      if (match[bm] != am)
        throw Error(layout_error(a_in, b_in, "the divisor's thread modes are not the minor thread modes"));
      continue;
    }
    if (a.modes[am].dim >= 0 || a.modes[am].size % b.modes[bm].size != 0)
      throw Error(layout_error(a_in, b_in, "the divisor's replication does not match"));
    if (a.modes[am].size == b.modes[bm].size) {
      match[bm] = am;
    } else {
      match[bm] = a.split(am, b.modes[bm].size);
      ++pos;  // a's mode stays at pos with its major part; the split-off minor part was just matched
    }
  }
  // Local slots: b's local list must be the minor end of a's.
  pos = static_cast<int>(a.local.size()) - 1;
  for (int j = static_cast<int>(b.local.size()) - 1; j >= 0; --j, --pos)
    if (pos < 0 || a.local[pos] != match[b.local[j]])
      throw Error(layout_error(a_in, b_in, "the divisor's local modes are not the minor local modes"));
  // The quotient is a without the matched modes (all at the tails of its lists).
  for (int d = 0; d < rank; ++d) a.dims[d].resize(a.dims[d].size() - b.dims[d].size());
  a.spatial.resize(a.spatial.size() - b.spatial.size());
  a.local.resize(a.local.size() - b.local.size());
  RegisterLayout quotient = a.build();
  // The law q * b == a, with a at the common rank (a rank-0 replicated(4) divided by local(1,1) is the rank-2
  // replicated(4)).
  ANYBIT_ASSERT(canonicalize(compose(quotient, b_in)).same_structure(canonicalize(promoted(canonicalize(a_in), rank).build())),
                "divide({}, {}) gave {}, whose product differs", a_in.to_string(), b_in.to_string(), quotient.to_string());
  return quotient;
}

bool divides(const RegisterLayout& a, const RegisterLayout& b) {
  try {
    divide(a, b);
    return true;
  } catch (const Error&) {
    return false;
  }
}

RegisterLayout reduce(const RegisterLayout& l, std::span<const int> dims) {
  Raw r(l);
  std::vector<bool> seen(r.rank, false);
  for (int d : dims) {
    if (d < 0 || d >= r.rank)
      throw Error(fmt::format("cannot reduce dimension {} of rank-{} layout {}", d, r.rank, l.to_string()));
    if (seen[d]) throw Error(fmt::format("dimension {} listed twice in reduce", d));
    seen[d] = true;
    for (int m : r.dims[d]) {
      r.modes[m].dim = -1;  // spatial: becomes replication; local: dropped below
      std::erase(r.local, m);
    }
    r.dims[d].clear();
  }
  return r.build();
}

RegisterLayout reshape(const RegisterLayout& l, const Shape& shape) {
  std::int64_t total = 1;
  for (auto s : shape) {
    if (s < 1) throw Error(fmt::format("reshape to a shape with a dimension of size {}", s));
    total *= s;
  }
  if (total != l.size())
    throw Error(fmt::format("cannot reshape layout {} of {} elements to {} elements", l.to_string(), l.size(),
                            total));
  Raw r(canonicalize(l));
  std::vector<int> flat;
  for (const auto& d : r.dims) flat.insert(flat.end(), d.begin(), d.end());
  r.rank = static_cast<int>(shape.size());
  r.dims.assign(r.rank, {});
  for (int d = r.rank - 1; d >= 0; --d) {
    std::int64_t needed = shape[d];
    while (needed > 1) {
      const int m = flat.back();
      const std::int64_t size = r.modes[m].size;
      if (size <= needed && needed % size == 0) {
        r.dims[d].insert(r.dims[d].begin(), m);
        flat.pop_back();
        needed /= size;
      } else if (size > needed && size % needed == 0) {
        r.modes[m].dim = -2;  // split() must not touch dimension lists mid-rebuild
        const int n = r.split(m, needed);
        r.dims[d].insert(r.dims[d].begin(), n);
        needed = 1;
      } else {
        throw Error(fmt::format("cannot reshape layout {} to ({}): a mode of size {} straddles the new "
                                "dimension of size {}",
                                l.to_string(), fmt::join(shape, ","), size, shape[d]));
      }
    }
  }
  for (int d = 0; d < r.rank; ++d)
    for (int m : r.dims[d]) r.modes[m].dim = d;
  return r.build();
}

RegisterLayout flatten(const RegisterLayout& l) { return reshape(l, {l.size()}); }

RegisterLayout permute(const RegisterLayout& l, std::span<const int> perm) {
  Raw r(l);
  std::vector<bool> seen(r.rank, false);
  if (static_cast<int>(perm.size()) != r.rank)
    throw Error(fmt::format("permutation of {} entries for a rank-{} layout", perm.size(), r.rank));
  for (int p : perm) {
    if (p < 0 || p >= r.rank || seen[p])
      throw Error(fmt::format("({}) is not a permutation of 0..{}", fmt::join(perm, ","), r.rank - 1));
    seen[p] = true;
  }
  std::vector<std::vector<int>> dims(r.rank);
  for (int i = 0; i < r.rank; ++i) {
    dims[i] = r.dims[perm[i]];
    for (int m : dims[i]) r.modes[m].dim = i;
  }
  r.dims = dims;
  return r.build();
}

std::int64_t linearize(std::span<const std::int64_t> index, std::span<const std::int64_t> shape) {
  std::int64_t linear = 0;
  for (std::size_t d = 0; d < shape.size(); ++d) linear = linear * shape[d] + index[d];
  return linear;
}

Shape delinearize(std::int64_t linear, std::span<const std::int64_t> shape) {
  Shape index(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    index[d] = linear % shape[d];
    linear /= shape[d];
  }
  return index;
}

}  // namespace anybit::layout
