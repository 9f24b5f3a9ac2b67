#include "vm/program.h"

namespace anybit::vm {

const Param* Program::find_param(const std::string& n) const {
  for (const Param& p : params)
    if (p.name == n) return &p;
  return nullptr;
}

}  // namespace anybit::vm
