#include "vm/verifier.h"

#include <set>

#include "isa/bitpack.h"
#include "isa/error.h"

namespace anybit::vm {

namespace {

constexpr std::size_t kMaxReportedErrors = 20;

enum class CopyState { Copying, Waited };

struct PendingCopy {
  std::vector<Expr> offset;
  CopyState state;
};

struct Value {
  TensorType type;
  bool is_mutable = false;
  bool freed = false;
};

class Verifier {
 public:
  Verifier(const Program& p, const VerifyOptions& o) : program_(p), options_(o) {}

  std::vector<std::string> run() {
    if (program_.name.empty()) error(program_.name, "program", "the program needs a name");
    if (program_.warps < 1 || program_.warps > 32)
      error("program " + program_.name, "warps", fmt::format("warps({}) must be between 1 and 32", program_.warps));
    if (program_.grid.empty() || program_.grid.size() > 3)
      error("program " + program_.name, "grid", fmt::format("the grid needs 1 to 3 dimensions, has {}", program_.grid.size()));
    std::set<std::string> seen;
    for (const Param& p : program_.params) {
      if (!seen.insert(p.name).second) error("program " + program_.name, "parameters", fmt::format("parameter '{}' is declared twice", p.name));
      if (p.kind != ParamKind::Pointer) scalars_.insert(p.name);
    }
    for (const Expr& e : program_.grid) check_expr(e, "program " + program_.name, "grid", /*allow_block=*/false);
    for (const char* b : {"blockIdx.x", "blockIdx.y", "blockIdx.z"}) scalars_.insert(b);
    body(program_.body, 0);
    if (uncommitted_)
      error(last_copy_location_, "copy_async", "this copy is never committed; add commit_group after it");
    if (groups_pending_)
      error(last_copy_location_, "copy_async",
            "the program ends with async copy groups pending; add wait_group {n=0} before the end");
    if (shared_peak_ > options_.shared_limit_bytes)
      error("program " + program_.name, "alloc_shared",
            fmt::format("the program needs {} bytes of shared memory, over the limit of {} bytes; use smaller "
                        "tiles or fewer stages, or free tiles earlier",
                        shared_peak_, options_.shared_limit_bytes));
    typing_.shared.total_bytes = shared_peak_;
    return errors_;
  }

  Typing typing() const { return typing_; }

 private:
  void error(const std::string& where, std::string_view what, const std::string& message) {
    errors_.push_back(fmt::format("{}: {}: {}", where.empty() ? "<program>" : where, what, message));
  }

  void check_expr(const Expr& e, const std::string& where, std::string_view what, bool allow_block = true) {
    std::set<std::string> names;
    isa::collect_variables(e, names);
    for (const auto& n : names) {
      if (!allow_block && n.starts_with("blockIdx.")) {
        error(where, what, fmt::format("'{}' cannot be used here; only integer parameters can", n));
      } else if (!scalars_.count(n)) {
        const Param* p = program_.find_param(n);
        error(where, what,
              p ? fmt::format("'{}' is a pointer parameter; expressions take integers", n)
                : fmt::format("undefined name '{}' in '{}'", n, e.to_string()));
      }
    }
  }

  void define_scalar(const std::string& name, const std::string& where, std::string_view what) {
    if (scalars_.count(name) || program_.find_param(name))
      error(where, what, fmt::format("'{}' is already defined; pick another name", name));
    scalars_.insert(name);
  }

  void body(const Body& b, int depth) {
    std::vector<std::string> scoped_scalars, scoped_values;
    for (const Statement& st : b) {
      if (const auto* inst = std::get_if<Instruction>(&st.node)) {
        instruction(*inst, depth, scoped_values);
      } else if (const auto* let = std::get_if<Let>(&st.node)) {
        check_expr(let->value, st.location, "let");
        define_scalar(let->name, st.location, "let");
        scoped_scalars.push_back(let->name);
      } else if (const auto* loop = std::get_if<For>(&st.node)) {
        for (const Expr* e : {&loop->begin, &loop->end, &loop->step}) check_expr(*e, st.location, "for");
        if (loop->step.is_constant() && loop->step.constant() <= 0)
          error(st.location, "for", fmt::format("loop step {} must be positive", loop->step.constant()));
        if (loop->unroll < 1) error(st.location, "for", fmt::format("unroll({}) must be at least 1", loop->unroll));
        define_scalar(loop->var, st.location, "for");
        body(loop->body, depth + 1);
        scalars_.erase(loop->var);
      } else if (const auto* branch = std::get_if<If>(&st.node)) {
        check_expr(branch->condition, st.location, "if");
        body(branch->then_body, depth + 1);
        body(branch->else_body, depth + 1);
      }
    }
    for (const auto& s : scoped_scalars) scalars_.erase(s);
    for (const auto& v : scoped_values) values_.erase(v);
  }

  void instruction(const Instruction& inst, int depth, std::vector<std::string>& scoped_values) {
    const auto& info = isa::info(inst.opcode);
    const std::string& where = inst.location;
    auto fail = [&](const std::string& m) { error(where, info.name, m); };
    if (inst.operands.size() != info.operands.size())
      return fail(fmt::format("takes {} operands, got {}", info.operands.size(), inst.operands.size()));
    if (info.has_result == inst.result.empty())
      return fail(info.has_result ? "needs a result name" : "produces no value but names a result");
    if (info.declares != isa::TypeDecl::OptionalRegister && (info.declares != isa::TypeDecl::None) != inst.type.has_value())
      return fail(info.declares != isa::TypeDecl::None ? "needs a declared result type" : "takes no declared type");
    if (inst.type && (inst.type->scope == isa::Scope::Shared) != (info.declares == isa::TypeDecl::Shared))
      return fail("declares the wrong kind of tile (shared vs register)");

    for (unsigned bit = 1; bit <= isa::kLastAttr; bit <<= 1) {
      const auto attr = static_cast<isa::Attr>(bit);
      if (isa::has_attribute(inst.attrs, attr) && !(info.allowed_attrs & bit))
        return fail(fmt::format("does not take the attribute '{}'", isa::attr_name(attr)));
      if (!isa::has_attribute(inst.attrs, attr) && (info.required_attrs & bit))
        return fail(fmt::format("needs the attribute '{}'", isa::attr_name(attr)));
    }
    isa::CheckInput input{inst, {}, std::nullopt, program_.threads()};
    bool operands_ok = true;
    for (std::size_t i = 0; i < inst.operands.size(); ++i) {
      const auto& op = inst.operands[i];
      for (const Expr& e : op.index) check_expr(e, where, info.name);
      if (info.operands[i] == isa::OperandKind::Param) {
        const Param* p = program_.find_param(op.name);
        if (!p || p->kind != ParamKind::Pointer) {
          fail(fmt::format("'{}' is not a pointer parameter of the program", op.name));
          operands_ok = false;
        } else {
          input.param_dtype = p->dtype;
        }
        input.operand_types.push_back(nullptr);
        continue;
      }
      auto it = values_.find(op.name);
      if (it == values_.end()) {
        fail(fmt::format("%{} is not defined{}", op.name, defined_.count(op.name) ? " here (it is out of scope)" : ""));
        operands_ok = false;
        input.operand_types.push_back(nullptr);
        continue;
      }
      if (it->second.freed) fail(fmt::format("%{} is used after free_shared", op.name));
      input.operand_types.push_back(&it->second.type);
    }
    if (!operands_ok) return;
    if (auto u = isa::updated_operand(inst.opcode); u && !values_.at(inst.operands[*u].name).is_mutable)
      fail(fmt::format("updates %{} in place, but only alloc_register tiles are mutable; allocate the target with "
                       "alloc_register",
                       inst.operands[*u].name));

    const auto result = isa::check_instruction(input);
    if (!result.error.empty()) return fail(result.error);
    async_rules(inst, where, depth);
    if (inst.result.empty()) return;
    if (!defined_.insert(inst.result).second)
      return fail(fmt::format("%{} is already defined; every value is defined once", inst.result));
    ANYBIT_ASSERT(result.type.has_value(), "{} returned no type for %{}", info.name, inst.result);
    values_[inst.result] = Value{*result.type, inst.opcode == Opcode::AllocRegister, false};
    typing_.values[inst.result] = *result.type;
    scoped_values.push_back(inst.result);
    if (inst.opcode == Opcode::AllocShared) allocate_shared(inst, depth);
  }

  void allocate_shared(const Instruction& inst, int depth) {
    if (depth != 0) {
      error(inst.location, "alloc_shared", "shared tiles must be allocated at the top level of the program, not "
                                           "inside a loop or branch");
      return;
    }
    const std::int64_t bytes = shared_bytes(*inst.type);
    // First fit among the gaps between live tiles, 128-byte aligned.
    std::int64_t offset = 0;
    for (const auto& [start, end] : live_shared_) {
      if (offset + bytes <= start) break;
      offset = std::max(offset, (end + kSharedAlignment - 1) / kSharedAlignment * kSharedAlignment);
    }
    live_shared_.insert({offset, offset + bytes});
    shared_ranges_[inst.result] = {offset, offset + bytes};
    typing_.shared.offsets[inst.result] = offset;
    shared_peak_ = std::max(shared_peak_, offset + bytes);
  }

  void async_rules(const Instruction& inst, const std::string& where, int depth) {
    switch (inst.opcode) {
      case Opcode::FreeShared: {
        Value& v = values_.at(inst.operands[0].name);
        if (depth != 0) error(where, "free_shared", "free_shared must be at the top level of the program");
        if (v.freed) error(where, "free_shared", fmt::format("%{} is freed twice", inst.operands[0].name));
        v.freed = true;
        if (auto r = shared_ranges_.find(inst.operands[0].name); r != shared_ranges_.end())
          live_shared_.erase(r->second);
        break;
      }
      case Opcode::CopyAsync:
        pending_[inst.operands[0].name].push_back({inst.operands[0].index, CopyState::Copying});
        uncommitted_ = true;
        last_copy_location_ = where;
        break;
      case Opcode::CommitGroup:
        if (uncommitted_) groups_pending_ = true, any_commit_ = true;
        uncommitted_ = false;
        break;
      case Opcode::WaitGroup:
        if (!any_commit_)
          error(where, "wait_group", "no copy group was committed before this wait; add commit_group after copy_async");
        for (auto& [tile, copies] : pending_)
          for (auto& c : copies) c.state = CopyState::Waited;
        if (*inst.attrs.n == 0) groups_pending_ = false;
        break;
      case Opcode::SyncThreads:
        for (auto& [tile, copies] : pending_) std::erase_if(copies, [](const PendingCopy& c) { return c.state == CopyState::Waited; });
        break;
      case Opcode::LoadShared: {
        auto it = pending_.find(inst.operands[0].name);
        if (it == pending_.end()) break;
        for (const auto& c : it->second)
          if (c.offset == inst.operands[0].index)
            error(where, "load_shared",
                  c.state == CopyState::Copying
                      ? fmt::format("reads %{} where a copy_async may still be in flight; add wait_group and "
                                    "sync_threads before the read",
                                    inst.operands[0].name)
                      : fmt::format("reads %{} after wait_group but without sync_threads: other threads' copies are "
                                    "not visible yet; add sync_threads",
                                    inst.operands[0].name));
        break;
      }
      default: break;
    }
  }

  const Program& program_;
  const VerifyOptions& options_;
  std::vector<std::string> errors_;
  std::set<std::string> scalars_;
  std::map<std::string, Value> values_;
  std::set<std::string> defined_;
  Typing typing_;
  std::set<std::pair<std::int64_t, std::int64_t>> live_shared_;
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> shared_ranges_;
  std::int64_t shared_peak_ = 0;
  std::map<std::string, std::vector<PendingCopy>> pending_;
  bool uncommitted_ = false, groups_pending_ = false, any_commit_ = false;
  std::string last_copy_location_;
};

}  // namespace

std::int64_t shared_bytes(const TensorType& type) {
  return static_cast<std::int64_t>(isa::packed_bytes(static_cast<std::size_t>(type.shared->span()), type.dtype.bits()));
}

std::vector<std::string> verify_errors(const Program& program, const VerifyOptions& options) {
  return Verifier(program, options).run();
}

Typing verify(const Program& program, const VerifyOptions& options) {
  Verifier v(program, options);
  auto errors = v.run();
  if (!errors.empty()) {
    if (errors.size() > kMaxReportedErrors) {
      const auto more = errors.size() - kMaxReportedErrors;
      errors.resize(kMaxReportedErrors);
      errors.push_back(fmt::format("... and {} more", more));
    }
    throw Error(fmt::format("invalid program '{}':\n{}", program.name, fmt::join(errors, "\n")));
  }
  return v.typing();
}

}  // namespace anybit::vm
