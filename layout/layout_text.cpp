// Canonical printing and parsing of register layout expressions.
#include <algorithm>
#include <cctype>
#include <optional>

#include "isa/error.h"
#include "layout/register_layout.h"
#include "layout/text_cursor.h"

namespace anybit::layout {

namespace {

struct Factor {
  std::string text;
};

// Splits a canonical layout into a product of primitives, each factor taking modes that are at the head
// (most major unconsumed) of their dimension and of their list. Among the possible factorizations the
// one with the fewest factors wins (spatial before local on ties), so the text is unique per map.
class Factorizer {
 public:
  explicit Factorizer(const RegisterLayout& l) : l_(l) {}

  std::optional<std::vector<std::string>> run() {
    State s{std::vector<std::size_t>(l_.rank(), 0), 0, 0};
    return best(s);
  }

 private:
  struct State {
    std::vector<std::size_t> dim_pos;
    std::size_t spatial_pos, local_pos;
  };

  bool is_head(const State& s, int m) const {
    const int d = l_.modes()[m].dim;
    return d >= 0 && s.dim_pos[d] < l_.dim_modes()[d].size() && l_.dim_modes()[d][s.dim_pos[d]] == m;
  }

  // The factor taken from the head of `list` at `pos`, or nothing; advances the state.
  std::optional<std::string> take(State& s, bool spatial_list) const {
    const auto& list = spatial_list ? l_.spatial() : l_.local();
    std::size_t& pos = spatial_list ? s.spatial_pos : s.local_pos;
    if (pos >= list.size()) return std::nullopt;
    const int first = list[pos];
    if (l_.modes()[first].dim < 0) {
      ++pos;
      return fmt::format("replicated({})", l_.modes()[first].size);
    }
    if (!is_head(s, first)) return std::nullopt;
    std::vector<int> group = {first};
    int direction = 0;
    for (std::size_t q = pos + 1; q < list.size(); ++q) {
      const int m = list[q], d = l_.modes()[m].dim, last = l_.modes()[group.back()].dim;
      if (d < 0 || !is_head(s, m)) break;
      if (std::any_of(group.begin(), group.end(), [&](int g) { return l_.modes()[g].dim == d; })) break;
      const int dir = d > last ? 1 : -1;
      if (direction != 0 && dir != direction) break;
      direction = dir;
      group.push_back(m);
    }
    std::vector<std::int64_t> sizes(l_.rank(), 1);
    for (int m : group) {
      sizes[l_.modes()[m].dim] = l_.modes()[m].size;
      ++s.dim_pos[l_.modes()[m].dim];
    }
    pos += group.size();
    const char* name = spatial_list ? (direction < 0 ? "column_spatial" : "spatial")
                                    : (direction < 0 ? "column_local" : "local");
    return fmt::format("{}({})", name, fmt::join(sizes, ","));
  }

  std::optional<std::vector<std::string>> best(const State& s) const {
    if (s.spatial_pos == l_.spatial().size() && s.local_pos == l_.local().size())
      return std::vector<std::string>{};
    std::optional<std::vector<std::string>> result;
    for (bool spatial_list : {true, false}) {
      State next = s;
      auto factor = take(next, spatial_list);
      if (!factor) continue;
      auto rest = best(next);
      if (!rest) continue;
      rest->insert(rest->begin(), *factor);
      if (!result || rest->size() < result->size()) result = std::move(rest);
    }
    return result;
  }

  const RegisterLayout& l_;
};

std::string general_form(const RegisterLayout& l) {
  std::vector<std::string> dims, spatial, local;
  for (const auto& d : l.dim_modes()) {
    std::vector<std::int64_t> sizes;
    for (int m : d) sizes.push_back(l.modes()[m].size);
    dims.push_back(fmt::format("({})", fmt::join(sizes, ",")));
  }
  for (int m : l.spatial())
    spatial.push_back(l.modes()[m].dim < 0 ? fmt::format("r{}", l.modes()[m].size) : fmt::format("m{}", m));
  for (int m : l.local()) local.push_back(fmt::format("m{}", m));
  return fmt::format("layout(dims: {}; spatial: {}; local: {})", fmt::join(dims, " "), fmt::join(spatial, " "),
                     fmt::join(local, " "));
}

constexpr std::int64_t kMaxSize = std::int64_t{1} << 40;

class LayoutParser {
 public:
  explicit LayoutParser(std::string_view text) : in_(text, "layout") {}

  RegisterLayout parse() {
    RegisterLayout l = expression();
    if (!in_.at_end()) in_.fail("'*', '/' or the end of the layout");
    return l;
  }

 private:
  std::vector<std::int64_t> sizes() { return in_.integer_list(1, kMaxSize, "a size between 1 and 2^40"); }

  RegisterLayout expression() {
    RegisterLayout l = term();
    for (;;) {
      if (in_.accept('*'))
        l = compose(l, term());
      else if (in_.accept('/'))
        l = divide(l, term());
      else
        return l;
    }
  }

  RegisterLayout term() {
    if (in_.accept('(')) {
      if (++depth_ > kMaxDepth) in_.fail(fmt::format("at most {} nested parentheses", kMaxDepth));
      RegisterLayout l = expression();
      in_.expect(')');
      --depth_;
      return l;
    }
    const std::size_t start = in_.position();
    const std::string name = in_.identifier();
    if (name == "layout") return general();
    if (name == "local") return local(sizes());
    if (name == "spatial") return spatial(sizes());
    if (name == "column_local") return column_local(sizes());
    if (name == "column_spatial") return column_spatial(sizes());
    if (name == "replicated") {
      auto factor = sizes();
      if (factor.size() != 1) in_.fail("one replication factor");
      return replicated(factor[0]);
    }
    in_.rewind(start);
    in_.fail("local, spatial, column_local, column_spatial, replicated, layout or '('");
  }

  void keyword(const char* word) {
    const std::size_t start = in_.position();
    if (in_.identifier() != word) {
      in_.rewind(start);
      in_.fail(fmt::format("'{}'", word));
    }
    in_.expect(':');
  }

  // layout(dims: (a,b) (c); spatial: m0 r2 m2; local: m1)
  RegisterLayout general() {
    in_.expect('(');
    keyword("dims");
    std::vector<Mode> modes;
    std::vector<std::vector<int>> dims;
    while (in_.peek() == '(') {
      std::vector<int> d;
      for (auto size : sizes()) {
        d.push_back(static_cast<int>(modes.size()));
        modes.push_back({size, static_cast<int>(dims.size())});
      }
      dims.push_back(d);
    }
    in_.expect(';');
    auto entries = [&](bool allow_replication) {
      std::vector<int> out;
      while (std::isalpha(static_cast<unsigned char>(in_.peek()))) {
        const char kind = in_.take();
        if (kind == 'r' && allow_replication) {
          modes.push_back({in_.integer(1, kMaxSize, "a replication factor after 'r'"), -1});
          out.push_back(static_cast<int>(modes.size()) - 1);
        } else if (kind == 'm') {
          out.push_back(static_cast<int>(in_.integer(0, 1 << 20, "a mode number after 'm'")));
        } else {
          in_.rewind(in_.position() - 1);
          in_.fail(allow_replication ? "a mode m<k> or a replication r<size>" : "a mode m<k>");
        }
      }
      return out;
    };
    keyword("spatial");
    auto spatial_list = entries(true);
    in_.expect(';');
    keyword("local");
    auto local_list = entries(false);
    in_.expect(')');
    return RegisterLayout(static_cast<int>(dims.size()), modes, dims, spatial_list, local_list);
  }

  static constexpr int kMaxDepth = 64;  // nested parentheses: a clear error instead of a stack overflow
  TextCursor in_;
  int depth_ = 0;
};

}  // namespace

std::string RegisterLayout::to_string() const {
  const RegisterLayout c = canonicalize(*this);
  auto factors = Factorizer(c).run();
  if (!factors) return general_form(c);
  if (factors->empty()) return fmt::format("local({})", fmt::join(std::vector<std::int64_t>(rank_, 1), ","));
  // A product of replication factors alone would parse as rank 0: anchor the rank with a unit primitive.
  if (rank_ > 0 && std::all_of(factors->begin(), factors->end(),
                               [](const std::string& f) { return f.starts_with("replicated"); }))
    factors->insert(factors->begin(), fmt::format("local({})", fmt::join(std::vector<std::int64_t>(rank_, 1), ",")));
  return fmt::format("{}", fmt::join(*factors, " * "));
}

RegisterLayout parse_layout(std::string_view text) {
  constexpr std::size_t kMaxBytes = 64 * 1024;
  if (text.size() > kMaxBytes)
    throw Error(fmt::format("layout text of {} bytes is more than the {} KiB a layout may take", text.size(), kMaxBytes / 1024));
  return LayoutParser(text).parse();
}

}  // namespace anybit::layout
