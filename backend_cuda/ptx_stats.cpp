#include "backend_cuda/ptx_stats.h"

#include <sstream>

namespace anybit::backend_cuda {

std::map<std::string, int> ptx_opcode_counts(const std::string& ptx) {
  std::map<std::string, int> counts;
  std::istringstream in(ptx);
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    std::string s = line.substr(first);
    if (s.starts_with("//") || s[0] == '.' || s[0] == '{' || s[0] == '}' || s[0] == ')' || s[0] == '(') continue;
    if (s[0] == '@') {  // predicate guard: "@%p1 bra ..." or "@!%p1 ..."
      const auto space = s.find_first_of(" \t");
      if (space == std::string::npos) continue;
      s = s.substr(s.find_first_not_of(" \t", space));
    }
    const auto end = s.find_first_of(" \t;");
    const std::string opcode = s.substr(0, end);
    if (opcode.empty() || opcode.back() == ':' || opcode.find(':') != std::string::npos) continue;  // labels
    ++counts[opcode];
  }
  return counts;
}

}  // namespace anybit::backend_cuda
