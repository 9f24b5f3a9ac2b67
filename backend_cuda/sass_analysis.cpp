#include "backend_cuda/sass_analysis.h"

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "isa/error.h"

namespace anybit::backend_cuda {

namespace {

bool is_branch(const std::string& op) { return op.starts_with("BRA") || op.starts_with("BRX") || op.starts_with("JMP"); }
bool ends_thread(const std::string& op) { return op.starts_with("EXIT") || op.starts_with("RET"); }
bool unconditional(const SassInstruction& i) { return i.predicate.empty() || i.predicate == "@PT"; }

}  // namespace

SassProgram parse_sass(const std::string& text) {
  // "        /*19f0*/               @P0 BRA `(.L_x_17) ;"   and   ".L_x_19:"
  static const std::regex instruction(R"(^\s*/\*([0-9a-f]+)\*/\s+(@!?U?P[0-9T]+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);)");
  static const std::regex label(R"(^(\.L_x_[0-9]+|\.L_[0-9A-Za-z_]+):)");
  static const std::regex target(R"(`\(([^)]+)\))");
  SassProgram p;
  std::istringstream in(text);
  std::string line;
  std::smatch m;
  std::vector<std::string> pending;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, label)) {
      pending.push_back(m[1].str());
      continue;
    }
    if (!std::regex_search(line, m, instruction)) continue;
    SassInstruction i;
    i.address = static_cast<std::uint32_t>(std::stoul(m[1].str(), nullptr, 16));
    i.predicate = m[2].str();
    while (!i.predicate.empty() && i.predicate.back() == ' ') i.predicate.pop_back();
    i.opcode = m[3].str();
    i.operands = m[4].str();
    std::smatch t;
    if (std::regex_search(i.operands, t, target)) i.target = t[1].str();
    for (auto& l : pending) p.labels[l] = p.instructions.size();
    pending.clear();
    p.instructions.push_back(std::move(i));
  }
  if (p.instructions.empty()) throw Error("SASS text holds no instruction");
  // Leaders: the first instruction, branch targets, and whatever follows a branch or an exit.
  std::set<std::size_t> leaders = {0};
  for (std::size_t k = 0; k < p.instructions.size(); ++k) {
    const auto& i = p.instructions[k];
    if (!i.target.empty()) {
      auto it = p.labels.find(i.target);
      if (it != p.labels.end()) leaders.insert(it->second);
    }
    if ((is_branch(i.opcode) || ends_thread(i.opcode)) && k + 1 < p.instructions.size()) leaders.insert(k + 1);
  }
  std::vector<std::size_t> starts(leaders.begin(), leaders.end());
  std::map<std::size_t, std::size_t> block_of;  // leader instruction -> block
  for (std::size_t b = 0; b < starts.size(); ++b) {
    SassBlock block;
    block.first = starts[b];
    block.last = b + 1 < starts.size() ? starts[b + 1] - 1 : p.instructions.size() - 1;
    block_of[block.first] = b;
    p.blocks.push_back(block);
  }
  for (std::size_t b = 0; b < p.blocks.size(); ++b) {
    auto& block = p.blocks[b];
    const auto& i = p.instructions[block.last];
    const bool falls_through = !(unconditional(i) && (is_branch(i.opcode) || ends_thread(i.opcode)));
    if (!i.target.empty() && is_branch(i.opcode)) {
      auto it = p.labels.find(i.target);
      if (it != p.labels.end()) block.successors.push_back(block_of.at(it->second));
    }
    if (falls_through && b + 1 < p.blocks.size()) block.successors.push_back(b + 1);
  }
  return p;
}

std::vector<SassLoop> find_loops(const SassProgram& p) {
  const std::size_t n = p.blocks.size();
  std::vector<std::vector<std::size_t>> preds(n);
  for (std::size_t b = 0; b < n; ++b)
    for (auto s : p.blocks[b].successors) preds[s].push_back(b);
  // Back edges b -> h with h at or before b in address order (ptxas lays loops out that way); the natural
  // loop of h: h plus every block that reaches a latch without passing h.
  std::map<std::size_t, std::vector<std::size_t>> latches;
  for (std::size_t b = 0; b < n; ++b)
    for (auto s : p.blocks[b].successors)
      if (s <= b) latches[s].push_back(b);
  std::vector<SassLoop> loops;
  for (const auto& [h, ls] : latches) {
    std::set<std::size_t> body = {h};
    std::vector<std::size_t> work;
    for (auto l : ls)
      if (body.insert(l).second) work.push_back(l);
    while (!work.empty()) {
      const auto b = work.back();
      work.pop_back();
      for (auto q : preds[b])
        if (body.insert(q).second) work.push_back(q);
    }
    SassLoop loop;
    loop.header = h;
    loop.blocks.assign(body.begin(), body.end());
    // Dominators inside the loop, from the header (iterative; loops are small).
    std::map<std::size_t, std::set<std::size_t>> dom;
    for (auto b : loop.blocks) dom[b] = b == h ? std::set<std::size_t>{h} : body;
    for (bool changed = true; changed;) {
      changed = false;
      for (auto b : loop.blocks) {
        if (b == h) continue;
        std::set<std::size_t> d;
        bool first = true;
        for (auto q : preds[b]) {
          if (!body.count(q)) continue;
          if (first) d = dom[q], first = false;
          else {
            std::set<std::size_t> x;
            std::set_intersection(d.begin(), d.end(), dom[q].begin(), dom[q].end(), std::inserter(x, x.begin()));
            d = std::move(x);
          }
        }
        d.insert(b);
        if (d != dom[b]) dom[b] = std::move(d), changed = true;
      }
    }
    // Blocks every iteration executes: those dominating every latch.
    for (auto b : loop.blocks) {
      const bool every = std::all_of(ls.begin(), ls.end(), [&](std::size_t l) { return dom[l].count(b) > 0; });
      (every ? loop.every : loop.sometimes).push_back(b);
    }
    loops.push_back(std::move(loop));
  }
  std::stable_sort(loops.begin(), loops.end(), [](const SassLoop& a, const SassLoop& b) { return a.blocks.size() < b.blocks.size(); });
  return loops;
}

std::map<std::string, int> opcode_counts(const SassProgram& p, const std::vector<std::size_t>& blocks) {
  std::map<std::string, int> counts;
  for (auto b : blocks)
    for (std::size_t k = p.blocks[b].first; k <= p.blocks[b].last; ++k)
      if (!p.instructions[k].never()) ++counts[p.instructions[k].opcode];
  return counts;
}

int total(const std::map<std::string, int>& counts) {
  int n = 0;
  for (const auto& [op, c] : counts) n += c;
  return n;
}

int count_prefix(const std::map<std::string, int>& counts, const std::string& prefix) {
  int n = 0;
  for (const auto& [op, c] : counts)
    if (op.starts_with(prefix)) n += c;
  return n;
}

std::optional<MainLoop> main_loop(const SassProgram& p) {
  for (const auto& loop : find_loops(p)) {
    auto all = opcode_counts(p, loop.blocks);
    if (count_prefix(all, "HMMA") == 0) continue;
    return MainLoop{loop, opcode_counts(p, loop.every), opcode_counts(p, loop.sometimes)};
  }
  return std::nullopt;
}

SmLimits a100_limits() { return {"A100", 65536, 2048, 32, 164 * 1024, 256}; }
SmLimits h100_limits() { return {"H100", 65536, 2048, 32, 228 * 1024, 256}; }

Occupancy occupancy(const SmLimits& sm, int threads, int registers, std::int64_t shared_bytes) {
  const int warps_per_block = (threads + 31) / 32;
  // Registers are allocated per warp in units of the granularity.
  const int per_warp = ((std::max(registers, 1) * 32 + sm.register_granularity - 1) / sm.register_granularity) *
                       sm.register_granularity;
  const int by_registers = sm.registers / (per_warp * warps_per_block);
  const int by_threads = sm.max_threads / (warps_per_block * 32);
  const std::int64_t per_block_shared = shared_bytes + 1024;  // the hardware reserves 1 KiB per block
  const int by_shared = static_cast<int>(std::min<std::int64_t>(sm.max_blocks, sm.shared_bytes / per_block_shared));
  Occupancy o;
  o.blocks = sm.max_blocks, o.limiter = "blocks";
  if (by_registers < o.blocks) o.blocks = by_registers, o.limiter = "registers";
  if (by_shared < o.blocks) o.blocks = by_shared, o.limiter = "shared memory";
  if (by_threads < o.blocks) o.blocks = by_threads, o.limiter = "threads";
  o.warps = o.blocks * warps_per_block;
  return o;
}

}  // namespace anybit::backend_cuda
