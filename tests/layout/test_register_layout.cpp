// Laws of the register layout algebra over seeded random layouts (seed printed through CAPTURE).
#include <doctest/doctest.h>

#include <map>
#include <set>

#include "isa/error.h"
#include "layout/register_layout.h"
#include "random_layouts.h"

using namespace anybit::layout;
using anybit::testing::random_layout;
using anybit::testing::random_rank;
using anybit::testing::same_map;

namespace {

constexpr int kTrials = 1000;

// Every logical index of a shape, row-major.
std::vector<Shape> all_indices(const Shape& shape) {
  std::int64_t total = 1;
  for (auto s : shape) total *= s;
  std::vector<Shape> out;
  for (std::int64_t i = 0; i < total; ++i) out.push_back(delinearize(i, shape));
  return out;
}

}  // namespace

TEST_CASE("compose: the defining map law and associativity") {
  for (int seed = 0; seed < kTrials; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    const int rank = random_rank(rng);
    const RegisterLayout a = random_layout(rng, rank), b = random_layout(rng, rank), c = random_layout(rng, rank);
    const RegisterLayout ab = a * b;
    CAPTURE(a.to_string());
    CAPTURE(b.to_string());
    // (A * B)(iA * sB + iB) = (tA * T_B + tB, lA * n_B + lB), checked from the definition on sampled pairs.
    const Shape sa = a.shape(), sb = b.shape();
    for (int sample = 0; sample < 256; ++sample) {
      Shape ia(rank), ib(rank), i(rank);
      for (int d = 0; d < rank; ++d) {
        ia[d] = static_cast<std::int64_t>(rng() % sa[d]);
        ib[d] = static_cast<std::int64_t>(rng() % sb[d]);
        i[d] = ia[d] * sb[d] + ib[d];
      }
      const Placement pa = a.map(ia), pb = b.map(ib), p = ab.map(i);
      REQUIRE(p.thread == pa.thread * b.num_threads() + pb.thread);
      REQUIRE(p.local == pa.local * b.local_size() + pb.local);
    }
    const RegisterLayout abc = a * b * c;
    if (abc.num_threads() * abc.local_size() <= 1 << 16) REQUIRE(same_map(ab * c, a * (b * c)));
  }
}

TEST_CASE("divide: (A * B) / B == A, and quotient * divisor == dividend") {
  for (int seed = 0; seed < kTrials; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    const int rank = random_rank(rng);
    const RegisterLayout a = random_layout(rng, rank), b = random_layout(rng, rank);
    CAPTURE(a.to_string());
    CAPTURE(b.to_string());
    const RegisterLayout q = (a * b) / b;
    REQUIRE(canonicalize(q).same_structure(canonicalize(a)));
    REQUIRE(same_map(q, a));
    const RegisterLayout ab = a * b;
    if (ab.num_threads() * ab.local_size() <= 1 << 14) REQUIRE(same_map(q * b, ab));
  }
}

TEST_CASE("divide: mma fragments divide warp tiles, and a clear error otherwise") {
  const RegisterLayout atom = column_local({2, 2}) * spatial({8, 4}) * local({1, 2});
  const RegisterLayout tile = spatial({2, 2}) * local({2, 1}) * atom;  // 4 warps, 2 m-fragments each
  CHECK(same_map(tile / atom, spatial({2, 2}) * local({2, 1})));
  // Equality is equality of maps: different maps of the same shape are unequal.
  CHECK_FALSE(spatial({8, 4}) == column_spatial({8, 4}));
  CHECK_FALSE(spatial({4}) * replicated(2) == replicated(2) * spatial({4}));
  CHECK(spatial({8, 4}) == spatial({8, 1}) * spatial({1, 4}));
  CHECK(divides(tile, atom));
  CHECK_FALSE(divides(spatial({16, 16}), atom));
  CHECK_THROWS_WITH_AS(divide(spatial({4}), local({4})), doctest::Contains("is not divisible by local(4)"),
                       anybit::Error);
  CHECK_THROWS_WITH_AS(divide(spatial({6}), spatial({4})), doctest::Contains("cannot hold one of size 4"),
                       anybit::Error);
}

TEST_CASE("map is a bijection onto (thread modulo replication, local) and inverse . map == id") {
  for (int seed = 0; seed < kTrials; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    const RegisterLayout l = random_layout(rng, random_rank(rng));
    CAPTURE(l.to_string());
    REQUIRE(l.num_threads() * l.local_size() == l.size() * l.replication());
    std::map<std::pair<std::int64_t, std::int64_t>, Shape> holder;
    for (const Shape& i : all_indices(l.shape())) {
      const Placement p = l.map(i);
      REQUIRE(l.logical_index(p.thread, p.local) == i);
      const auto threads = l.threads_of(i);
      REQUIRE(static_cast<std::int64_t>(threads.size()) == l.replication());
      REQUIRE(threads.front() == p.thread);
      for (auto t : threads) REQUIRE(holder.emplace(std::pair{t, p.local}, i).second);
    }
    // Every (thread, local) holds exactly one element.
    REQUIRE(static_cast<std::int64_t>(holder.size()) == l.num_threads() * l.local_size());
    for (const auto& [key, index] : holder) REQUIRE(l.logical_index(key.first, key.second) == index);
  }
}

TEST_CASE("reduce agrees with the map") {
  for (int seed = 0; seed < kTrials; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    const int rank = random_rank(rng);
    const RegisterLayout l = random_layout(rng, rank);
    const int dim = static_cast<int>(rng() % rank);
    const int dims[] = {dim};
    const RegisterLayout r = reduce(l, dims);
    CAPTURE(l.to_string());
    CAPTURE(dim);
    REQUIRE(r.num_threads() == l.num_threads());
    REQUIRE(r.shape()[dim] == 1);
    // Local slot of i in A with dim's local coordinates removed: the index of the slot among slots whose
    // reduced-dim coordinate is 0 is what reduce keeps; compare by the set of non-reduced coordinates.
    for (const Shape& i : all_indices(l.shape())) {
      Shape ri = i;
      ri[dim] = 0;
      const auto reduced_threads = r.threads_of(ri);
      const std::set<std::int64_t> holders(reduced_threads.begin(), reduced_threads.end());
      for (auto t : l.threads_of(i)) REQUIRE(holders.count(t) == 1);
      // Elements that differ only in `dim` and share a thread in A share the same reduced local slot.
      const Placement p = l.map(i), q = r.map(ri);
      REQUIRE(r.logical_index(p.thread, q.local) == ri);
    }
  }
}

TEST_CASE("reshape and flatten agree with the map") {
  int reshaped = 0;
  for (int seed = 0; seed < kTrials; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    const RegisterLayout l = random_layout(rng, random_rank(rng));
    CAPTURE(l.to_string());
    const RegisterLayout f = flatten(l);
    for (const Shape& i : all_indices(l.shape())) {
      const Shape fi = {linearize(i, l.shape())};
      REQUIRE(f.threads_of(fi) == l.threads_of(i));
      REQUIRE(f.map(fi).local == l.map(i).local);
    }
    // Split the flat size into two factors; reshape succeeds when no mode straddles the cut.
    const std::int64_t n = l.size();
    for (std::int64_t inner = 2; inner < n; ++inner) {
      if (n % inner) continue;
      const Shape target = {n / inner, inner};
      RegisterLayout r;
      try {
        r = reshape(l, target);
      } catch (const anybit::Error&) {
        continue;
      }
      ++reshaped;
      for (const Shape& i : all_indices(target)) {
        const Shape src = delinearize(linearize(i, target), l.shape());
        REQUIRE(r.threads_of(i) == l.threads_of(src));
        REQUIRE(r.map(i).local == l.map(src).local);
      }
      break;
    }
  }
  CHECK(reshaped > kTrials / 2);
  CHECK_THROWS_WITH_AS(reshape(spatial({2, 3}), {3, 2}), doctest::Contains("straddles"), anybit::Error);
  CHECK_THROWS_WITH_AS(reshape(spatial({2, 3}), {5}), doctest::Contains("of 6 elements to 5 elements"),
                       anybit::Error);
}

TEST_CASE("permute moves dimensions and preserves the map") {
  for (int seed = 0; seed < kTrials; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    const RegisterLayout l = random_layout(rng, 3);
    const int perm[] = {2, 0, 1}, inverse[] = {1, 2, 0};
    const RegisterLayout p = permute(l, perm);
    for (const Shape& i : all_indices(l.shape())) {
      const Shape pi = {i[2], i[0], i[1]};
      REQUIRE(p.map(pi) == l.map(i));
    }
    REQUIRE(same_map(permute(p, inverse), l));
  }
}

TEST_CASE("canonical printing round-trips through the parser and is unique per map") {
  for (int seed = 0; seed < kTrials; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    const RegisterLayout l = random_layout(rng, random_rank(rng));
    const std::string text = l.to_string();
    CAPTURE(text);
    const RegisterLayout parsed = parse_layout(text);
    REQUIRE(same_map(parsed, l));
    REQUIRE(parsed.to_string() == text);
    REQUIRE(canonicalize(l).same_structure(canonicalize(parsed)));
    REQUIRE(same_map(canonicalize(l), l));
    REQUIRE((l == parsed) == true);
    const RegisterLayout f = flatten(l);  // flattening often needs the general form
    REQUIRE(same_map(parse_layout(f.to_string()), f));
  }
  CHECK((spatial({8, 1}) * spatial({1, 4})).to_string() == "spatial(8,4)");
  CHECK((local({2}) * local({4})).to_string() == "local(8)");
  CHECK((spatial({4}) * replicated(2) * replicated(2)).to_string() == "spatial(4) * replicated(4)");
  CHECK(flatten(column_spatial({4, 8})).to_string() == "layout(dims: (4,8); spatial: m1 m0; local: )");
  CHECK(parse_layout("layout(dims: (4,8); spatial: m1 m0; local: )") == flatten(column_spatial({4, 8})));
  CHECK(parse_layout("(spatial(8,4) * local(2,2)) / local(2,2)") == spatial({8, 4}));
}

TEST_CASE("layout parse errors name the column and what was expected") {
  CHECK_THROWS_WITH_AS(parse_layout("spatial(8,4) * lcal(2)"),
                       doctest::Contains("at column 16: expected local, spatial"), anybit::Error);
  CHECK_THROWS_WITH_AS(parse_layout("spatial(8,"), doctest::Contains("expected a size between 1 and 2^40"),
                       anybit::Error);
  CHECK_THROWS_WITH_AS(parse_layout("spatial(0)"), doctest::Contains("column 9"), anybit::Error);
  CHECK_THROWS_WITH_AS(parse_layout("spatial(8) local(2)"), doctest::Contains("expected '*', '/' or the end"),
                       anybit::Error);
  CHECK_THROWS_WITH_AS(parse_layout("spatial(8) * local(2,2)"), doctest::Contains("cannot compose layouts of rank 1 and 2"),
                       anybit::Error);
  CHECK_THROWS_WITH_AS(parse_layout("layout(dims: (4); spatial: m0; local: m0)"),
                       doctest::Contains("must appear exactly once"), anybit::Error);
  CHECK_THROWS_WITH_AS(parse_layout("layout(dims: (4); spatial: m7; local: )"),
                       doctest::Contains("refers to mode m7"), anybit::Error);
  CHECK_THROWS_AS(parse_layout("spatial(1099511627776,1099511627776)"), anybit::Error);
}

TEST_CASE("regression (fuzzing): dividing a lower-rank layout by a higher-rank one keeps the law at the common rank") {
  // replicated(4) has rank 0; dividing by the rank-2 local(1,1) promotes it, which once tripped an internal
  // assertion comparing against the unpromoted dividend.
  const RegisterLayout q = divide(replicated(4), local({1, 1}));
  CHECK(q.rank() == 2);
  CHECK(compose(q, local({1, 1})) == compose(replicated(4), local({1, 1})));
  CHECK_THROWS_AS(parse_layout("replicated(4)  / local(1,1) * column_2)"), anybit::Error);  // the fuzzer's input: an error, no more
}
