#include "vm/builder.h"

#include <cctype>

#include "isa/error.h"

namespace anybit::vm {

namespace {

bool valid_identifier(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

[[noreturn]] void fail(const Loc& loc, std::string_view what, const std::string& message) {
  throw Error(fmt::format("{}: {}: {}", describe(loc), what, message));
}

Instruction* find_definition(Body& body, const std::string& name) {
  for (Statement& st : body) {
    if (auto* inst = std::get_if<Instruction>(&st.node); inst && inst->result == name) return inst;
    if (auto* loop = std::get_if<For>(&st.node))
      if (auto* found = find_definition(loop->body, name)) return found;
    if (auto* branch = std::get_if<If>(&st.node)) {
      if (auto* found = find_definition(branch->then_body, name)) return found;
      if (auto* found = find_definition(branch->else_body, name)) return found;
    }
  }
  return nullptr;
}

}  // namespace

Builder::Builder(std::string name, int warps, Loc loc) {
  if (!valid_identifier(name)) fail(loc, "program", fmt::format("'{}' is not a valid program name", name));
  if (warps < 1 || warps > 32) fail(loc, "program", fmt::format("warps {} must be between 1 and 32", warps));
  program_.name = std::move(name);
  program_.warps = warps;
  program_.grid = {Expr(1)};
  bodies_.push_back(&program_.body);
  for (const char* b : {"blockIdx.x", "blockIdx.y", "blockIdx.z"}) scalars_.insert(b);
}

Pointer Builder::pointer(std::string name, DataType dtype, Loc loc) {
  if (!valid_identifier(name) || program_.find_param(name))
    fail(loc, "parameter", fmt::format("'{}' is not a valid new parameter name", name));
  program_.params.push_back({name, ParamKind::Pointer, dtype});
  return {name};
}

Expr Builder::scalar_param(std::string name, ParamKind kind, const Loc& loc) {
  if (!valid_identifier(name) || program_.find_param(name))
    fail(loc, "parameter", fmt::format("'{}' is not a valid new parameter name", name));
  program_.params.push_back({name, kind, {}});
  scalars_.insert(name);
  return Expr::var(name);
}

Expr Builder::i32(std::string name, Loc loc) { return scalar_param(std::move(name), ParamKind::I32, loc); }
Expr Builder::i64(std::string name, Loc loc) { return scalar_param(std::move(name), ParamKind::I64, loc); }

void Builder::grid(std::vector<Expr> dims, Loc loc) {
  if (dims.empty() || dims.size() > 3) fail(loc, "grid", fmt::format("the grid needs 1 to 3 dimensions, got {}", dims.size()));
  program_.grid = std::move(dims);
}

std::string Builder::fresh_name() {
  std::string n;
  do n = fmt::format("v{}", next_value_++);
  while (types_.count(n));
  return n;
}

Value Builder::emit(isa::Opcode op, std::vector<isa::Operand> operands, std::optional<TensorType> type,
                    isa::Attributes attrs, const Loc& loc) {
  const auto& info = isa::info(op);
  Instruction inst{op, info.has_result ? fresh_name() : "", std::move(operands), std::move(type), std::move(attrs),
                   describe(loc)};
  isa::CheckInput input{inst, {}, std::nullopt, threads()};
  for (std::size_t i = 0; i < inst.operands.size(); ++i) {
    const auto& name = inst.operands[i].name;
    if (info.operands[i] == isa::OperandKind::Param) {
      const Param* p = program_.find_param(name);
      if (!p || p->kind != ParamKind::Pointer) fail(loc, info.name, fmt::format("'{}' is not a pointer parameter", name));
      input.param_dtype = p->dtype;
      input.operand_types.push_back(nullptr);
      continue;
    }
    auto it = types_.find(name);
    if (it == types_.end()) fail(loc, info.name, fmt::format("%{} is not a value of this builder", name));
    input.operand_types.push_back(&it->second);
  }
  auto result = isa::check_instruction(input);
  if (!result.error.empty()) fail(loc, info.name, result.error);
  Value v{inst.result};
  if (!inst.result.empty()) types_[inst.result] = *result.type;
  current().push_back(Statement{std::move(inst), describe(loc)});
  return v;
}

Instruction* Builder::definition(const std::string& value) {
  for (Body* b : bodies_)
    if (Instruction* def = find_definition(*b, value)) return def;
  return nullptr;
}

const TensorType& Builder::type_of(Value v) const {
  auto it = types_.find(v.name);
  ANYBIT_ASSERT(it != types_.end(), "value %{} is not from this builder", v.name);
  return it->second;
}

Value Builder::global_view(Pointer p, std::vector<Expr> shape, std::vector<Expr> strides, Loc loc) {
  isa::Attributes a;
  a.shape = std::move(shape);
  a.strides = std::move(strides);
  return emit(Opcode::GlobalView, {{p.name, {}}}, std::nullopt, a, loc);
}

Value Builder::alloc_shared(DataType dtype, layout::SharedLayout l, Loc loc) {
  if (bodies_.size() != 1) fail(loc, "alloc_shared", "shared tiles must be allocated at the top level");
  return emit(Opcode::AllocShared, {}, TensorType::shared_tile(dtype, std::move(l)), {}, loc);
}

Value Builder::alloc_register(TensorType type, double init, Loc loc) {
  isa::Attributes a;
  if (init != 0.0) a.init = init;
  return emit(Opcode::AllocRegister, {}, std::move(type), a, loc);
}

void Builder::free_shared(Value s, Loc loc) { emit(Opcode::FreeShared, {{s.name, {}}}, std::nullopt, {}, loc); }

namespace {
isa::Attributes masked_attributes(const Mask& m) {
  isa::Attributes a;
  a.masked = m.on;
  a.masked_dims = m.dims;
  return a;
}
}  // namespace

Value Builder::load_global(Value view, std::vector<Expr> offset, TensorType tile, Mask masked, Loc loc) {
  isa::Attributes a = masked_attributes(masked);
  return emit(Opcode::LoadGlobal, {{view.name, std::move(offset)}}, std::move(tile), a, loc);
}

void Builder::store_global(Value tile, Value view, std::vector<Expr> offset, Mask masked, Loc loc) {
  isa::Attributes a = masked_attributes(masked);
  emit(Opcode::StoreGlobal, {{tile.name, {}}, {view.name, std::move(offset)}}, std::nullopt, a, loc);
}

Value Builder::load_shared(Value s, std::vector<Expr> offset, TensorType tile, Loc loc) {
  return emit(Opcode::LoadShared, {{s.name, std::move(offset)}}, std::move(tile), {}, loc);
}

void Builder::store_shared(Value tile, Value s, std::vector<Expr> offset, Loc loc) {
  emit(Opcode::StoreShared, {{tile.name, {}}, {s.name, std::move(offset)}}, std::nullopt, {}, loc);
}

void Builder::copy_async(Value s, std::vector<Expr> shared_offset, Value view, std::vector<Expr> global_offset,
                         layout::Shape shape, Mask masked, Loc loc) {
  isa::Attributes a = masked_attributes(masked);
  a.shape = std::vector<Expr>(shape.begin(), shape.end());
  emit(Opcode::CopyAsync, {{s.name, std::move(shared_offset)}, {view.name, std::move(global_offset)}}, std::nullopt, a,
       loc);
}

void Builder::commit_group(Loc loc) { emit(Opcode::CommitGroup, {}, std::nullopt, {}, loc); }
void Builder::wait_group(int n, Loc loc) {
  isa::Attributes a;
  a.n = n;
  emit(Opcode::WaitGroup, {}, std::nullopt, a, loc);
}
void Builder::sync_threads(Loc loc) { emit(Opcode::SyncThreads, {}, std::nullopt, {}, loc); }

Value Builder::cast(Value x, DataType to, Loc loc) {
  isa::Attributes a;
  a.dtype = to;
  return emit(Opcode::Cast, {{x.name, {}}}, std::nullopt, a, loc);
}
Value Builder::cast_scaled(Value x, DataType to, int exp, Loc loc) {
  isa::Attributes a;
  a.dtype = to;
  a.exp = exp;
  return emit(Opcode::Cast, {{x.name, {}}}, std::nullopt, a, loc);
}
Value Builder::cast_scaled(Value x, const TensorType& to, int exp, Loc loc) {
  isa::Attributes a;
  a.dtype = to.dtype;
  a.exp = exp;
  return emit(Opcode::Cast, {{x.name, {}}}, to, a, loc);
}
Value Builder::cast_finite(Value x, const TensorType& to, int exp, Loc loc) {
  isa::Attributes a;
  a.dtype = to.dtype;
  if (exp != 0) a.exp = exp;
  a.finite = true;
  return emit(Opcode::Cast, {{x.name, {}}}, to, a, loc);
}
Value Builder::cast(Value x, const TensorType& to, Loc loc) {
  isa::Attributes a;
  a.dtype = to.dtype;
  return emit(Opcode::Cast, {{x.name, {}}}, to, a, loc);
}
Value Builder::neg(Value x, Loc loc) { return emit(Opcode::Neg, {{x.name, {}}}, std::nullopt, {}, loc); }
Value Builder::abs(Value x, Loc loc) { return emit(Opcode::Abs, {{x.name, {}}}, std::nullopt, {}, loc); }
Value Builder::add(Value a, Value b, Loc loc) { return emit(Opcode::Add, {{a.name, {}}, {b.name, {}}}, std::nullopt, {}, loc); }
Value Builder::sub(Value a, Value b, Loc loc) { return emit(Opcode::Sub, {{a.name, {}}, {b.name, {}}}, std::nullopt, {}, loc); }
Value Builder::mul(Value a, Value b, Loc loc) { return emit(Opcode::Mul, {{a.name, {}}, {b.name, {}}}, std::nullopt, {}, loc); }
Value Builder::div(Value a, Value b, Loc loc) { return emit(Opcode::Div, {{a.name, {}}, {b.name, {}}}, std::nullopt, {}, loc); }
Value Builder::min(Value a, Value b, Loc loc) { return emit(Opcode::Min, {{a.name, {}}, {b.name, {}}}, std::nullopt, {}, loc); }
Value Builder::max(Value a, Value b, Loc loc) { return emit(Opcode::Max, {{a.name, {}}, {b.name, {}}}, std::nullopt, {}, loc); }
Value Builder::fma(Value a, Value b, Value c, Loc loc) {
  return emit(Opcode::Fma, {{a.name, {}}, {b.name, {}}, {c.name, {}}}, std::nullopt, {}, loc);
}
Value Builder::where(Value cond, Value a, Value b, Loc loc) {
  return emit(Opcode::Where, {{cond.name, {}}, {a.name, {}}, {b.name, {}}}, std::nullopt, {}, loc);
}
Value Builder::reduce(Value x, std::vector<int> dims, std::string op, Loc loc) {
  isa::Attributes a;
  a.dims = std::move(dims);
  a.op = std::move(op);
  return emit(Opcode::Reduce, {{x.name, {}}}, std::nullopt, a, loc);
}
void Builder::dot(Value c, Value a, Value b, Loc loc) {
  if (const Instruction* def = definition(c.name); def && def->opcode != Opcode::AllocRegister)
    fail(loc, "dot", fmt::format("dot accumulates into %{}, which is not mutable; allocate it with alloc_register", c.name));
  emit(Opcode::Dot, {{c.name, {}}, {a.name, {}}, {b.name, {}}}, std::nullopt, {}, loc);
}
Value Builder::view(Value x, TensorType as, Loc loc) { return emit(Opcode::View, {{x.name, {}}}, std::move(as), {}, loc); }
Value Builder::reshape(Value x, layout::Shape shape, Loc loc) {
  isa::Attributes a;
  a.shape = std::vector<Expr>(shape.begin(), shape.end());
  return emit(Opcode::Reshape, {{x.name, {}}}, std::nullopt, a, loc);
}
void Builder::assign(Value dst, Value src, Loc loc) {
  if (const Instruction* def = definition(dst.name); def && def->opcode != Opcode::AllocRegister)
    fail(loc, "assign", fmt::format("assign writes %{}, which is not mutable; allocate it with alloc_register", dst.name));
  emit(Opcode::Assign, {{dst.name, {}}, {src.name, {}}}, std::nullopt, {}, loc);
}

Expr Builder::let(std::string name, Expr value, Loc loc) {
  if (!valid_identifier(name) || scalars_.count(name) || program_.find_param(name))
    fail(loc, "let", fmt::format("'{}' is not a valid new name", name));
  scalars_.insert(name);
  current().push_back(Statement{Let{name, std::move(value)}, describe(loc)});
  return Expr::var(name);
}

void Builder::for_range(std::string var, Expr begin, Expr end, const std::function<void(Expr)>& body, int unroll,
                        Expr step, Loc loc) {
  if (!valid_identifier(var) || scalars_.count(var) || program_.find_param(var))
    fail(loc, "for", fmt::format("'{}' is not a valid new loop variable", var));
  if (unroll < 1) fail(loc, "for", fmt::format("unroll {} must be at least 1", unroll));
  For loop{var, std::move(begin), std::move(end), std::move(step), unroll, {}};
  scalars_.insert(var);
  bodies_.push_back(&loop.body);
  try {
    body(Expr::var(var));
  } catch (...) {
    bodies_.pop_back();
    throw;
  }
  bodies_.pop_back();
  scalars_.erase(var);
  current().push_back(Statement{std::move(loop), describe(loc)});
}

void Builder::if_then(Expr condition, const std::function<void()>& then_body, const std::function<void()>& else_body,
                      Loc loc) {
  If branch{std::move(condition), {}, {}};
  for (auto [fn, target] : {std::pair{&then_body, &branch.then_body}, std::pair{&else_body, &branch.else_body}}) {
    if (!*fn) continue;
    bodies_.push_back(target);
    try {
      (*fn)();
    } catch (...) {
      bodies_.pop_back();
      throw;
    }
    bodies_.pop_back();
  }
  current().push_back(Statement{std::move(branch), describe(loc)});
}

Value Builder::name(Value v, std::string name, Loc loc) {
  if (!valid_identifier(name) || types_.count(name))
    fail(loc, "name", fmt::format("'{}' is not a valid unused value name", name));
  Instruction* def = definition(v.name);
  if (!def) fail(loc, "name", fmt::format("%{} is not defined in the current scope", v.name));
  def->result = name;
  types_[name] = types_.at(v.name);
  types_.erase(v.name);
  return {name};
}

Program Builder::build(Loc loc) const {
  if (bodies_.size() != 1) fail(loc, "build", "build() called inside a loop or branch body");
  verify(program_);
  return program_;
}

}  // namespace anybit::vm
