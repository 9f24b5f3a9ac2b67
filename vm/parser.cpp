// .vm text parser: the grammar is in printer.cpp. Errors name file:line:column and what was expected.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

#include "isa/error.h"
#include "vm/program.h"

namespace anybit::vm {

namespace {

using isa::OperandKind;

// Nesting deeper than this is rejected instead of risking the parser's stack.
constexpr int kMaxDepth = 64;
constexpr int kMaxHeight = 512;

class Parser {
 public:
  Parser(std::string_view text, std::string_view file) : text_(text), file_(file) {}

  Program program() {
    Program p;
    skip(true);
    keyword("program");
    p.name = identifier("a program name");
    expect('(');
    if (!accept(')')) {
      do p.params.push_back(param(p));
      while (accept(','));
      expect(')');
    }
    keyword("grid");
    expect('(');
    do p.grid.push_back(expression());
    while (accept(','));
    expect(')');
    if (p.grid.size() > 3) fail_at(here(), "a grid of at most 3 dimensions");
    keyword("warps");
    expect('(');
    const auto warps_at = mark();
    const std::int64_t w = integer();
    if (w < 1 || w > 32) throw error_at(warps_at, fmt::format("warps({}) must be between 1 and 32", w));
    p.warps = static_cast<int>(w);
    expect(')');
    p.body = block(0);
    skip(true);
    if (pos_ != text_.size()) fail("the end of the file after the program's closing '}'");
    return p;
  }

 private:
  struct Position {
    std::size_t offset;
  };

  Position here() const { return {pos_}; }
  // The position of the next token.
  Position mark() {
    skip();
    return {pos_};
  }
  std::string location(Position p) const {
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i < p.offset && i < text_.size(); ++i) {
      if (text_[i] == '\n') ++line, col = 1;
      else ++col;
    }
    return fmt::format("{}:{}:{}", file_, line, col);
  }
  Error error_at(Position p, const std::string& message) const {
    return Error(fmt::format("{}: {}", location(p), message));
  }
  std::string found() const {
    if (pos_ >= text_.size()) return "the end of the file";
    if (text_[pos_] == '\n') return "the end of the line";
    std::size_t end = pos_;
    while (end < text_.size() && end - pos_ < 16 && text_[end] != '\n' && !std::isspace(static_cast<unsigned char>(text_[end])))
      ++end;
    if (end == pos_) end = pos_ + 1;
    return "'" + printable(text_.substr(pos_, end - pos_)) + "'";
  }
  [[noreturn]] void fail_at(Position p, const std::string& expected) const {
    throw error_at(p, fmt::format("expected {}, found {}", expected, found()));
  }
  [[noreturn]] void fail(const std::string& expected) const { fail_at(here(), expected); }

  // Skips spaces and // comments; newlines too when `lines` is set (between statements).
  void skip(bool lines = false) {
    for (;;) {
      while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\r' ||
                                     (lines && text_[pos_] == '\n')))
        ++pos_;
      if (text_.substr(pos_, 2) == "//") {
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
        continue;
      }
      return;
    }
  }
  bool peek(char c) {
    skip();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  bool accept(char c) {
    if (peek(c)) return ++pos_, true;
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail(fmt::format("'{}'", c));
  }
  static bool ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
  static bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; }
  bool peek_identifier() {
    skip();
    return pos_ < text_.size() && ident_start(text_[pos_]);
  }
  std::string identifier(const char* what) {
    if (!peek_identifier()) fail(what);
    const std::size_t start = pos_;
    while (pos_ < text_.size() && ident_char(text_[pos_])) ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }
  bool accept_keyword(std::string_view word) {
    skip();
    if (text_.substr(pos_, word.size()) == word &&
        (pos_ + word.size() == text_.size() || !ident_char(text_[pos_ + word.size()]))) {
      pos_ += word.size();
      return true;
    }
    return false;
  }
  void keyword(std::string_view word) {
    if (!accept_keyword(word)) fail(fmt::format("'{}'", word));
  }
  std::int64_t integer() {
    skip();
    std::int64_t v = 0;
    auto [ptr, ec] = std::from_chars(text_.data() + pos_, text_.data() + text_.size(), v);
    if (ec == std::errc::result_out_of_range) throw error_at(here(), "integer literal out of range");
    if (ec != std::errc()) fail("an integer");
    pos_ = ptr - text_.data();
    return v;
  }
  double number() {
    skip();
    const std::size_t start = pos_;
    if (pos_ < text_.size() && (text_[pos_] == '-' || text_[pos_] == '+')) ++pos_;
    while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '.' ||
                                   ((text_[pos_] == '-' || text_[pos_] == '+') && (text_[pos_ - 1] == 'e' || text_[pos_ - 1] == 'E'))))
      ++pos_;
    const std::string s(text_.substr(start, pos_ - start));
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size()) {
      pos_ = start;
      fail("a number");
    }
    return v;
  }
  DataType dtype() {
    const auto at = mark();
    skip();
    const std::size_t start = pos_;
    while (pos_ < text_.size() && std::isalnum(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    DataType t;
    if (!isa::try_parse_dtype(text_.substr(start, pos_ - start), t)) {
      pos_ = start;
      throw error_at(at, fmt::format("expected a data type ({}), found {}", isa::dtype_forms(), found()));
    }
    return t;
  }

  Param param(const Program& p) {
    const auto at = mark();
    Param q;
    q.name = identifier("a parameter name");
    if (p.find_param(q.name)) throw error_at(at, fmt::format("parameter '{}' is declared twice", q.name));
    expect(':');
    if (accept_keyword("ptr")) {
      q.kind = ParamKind::Pointer;
      expect('<');
      q.dtype = dtype();
      expect('>');
    } else if (accept_keyword("i32")) {
      q.kind = ParamKind::I32;
    } else if (accept_keyword("i64")) {
      q.kind = ParamKind::I64;
    } else {
      fail("a parameter type: ptr<DTYPE>, i32 or i64");
    }
    return q;
  }

  // Expressions, by precedence climbing. Two limits keep every later recursion over an expression safe:
  // kMaxDepth on the parser's own nesting (parentheses, prefix operators, calls) and kMaxHeight on the
  // height of the tree it builds, which a long chain such as `n + n + ... + n` grows without nesting.
  struct Parsed {
    Expr expr;
    int height = 1;
  };
  Expr expression() { return binary(1).expr; }
  Parsed node(isa::ExprOp op, const Parsed& a, const Parsed& b, Position at) const {
    const int height = std::max(a.height, b.height) + 1;
    if (height > kMaxHeight)
      throw error_at(at, fmt::format("expression more than {} operators deep (split it with let)", kMaxHeight));
    return {Expr::make(op, a.expr, b.expr), height};
  }
  Parsed binary(int level) {
    if (level > 6) return unary();
    Parsed lhs = binary(level + 1);
    for (;;) {
      skip();
      const std::string_view rest = text_.substr(pos_);
      struct Op {
        std::string_view text;
        int level;
        isa::ExprOp op;
      };
      static constexpr Op ops[] = {{"||", 1, isa::ExprOp::Or}, {"&&", 2, isa::ExprOp::And}, {"==", 3, isa::ExprOp::Eq},
                                   {"!=", 3, isa::ExprOp::Ne}, {"<=", 4, isa::ExprOp::Le},  {">=", 4, isa::ExprOp::Ge},
                                   {"<", 4, isa::ExprOp::Lt},  {">", 4, isa::ExprOp::Gt},   {"+", 5, isa::ExprOp::Add},
                                   {"-", 5, isa::ExprOp::Sub}, {"*", 6, isa::ExprOp::Mul},  {"/", 6, isa::ExprOp::Div},
                                   {"%", 6, isa::ExprOp::Mod}};
      const Op* match = nullptr;
      for (const Op& o : ops)
        if (o.level == level && rest.starts_with(o.text)) {
          match = &o;
          break;
        }
      if (!match) return lhs;
      const Position at = here();
      pos_ += match->text.size();
      lhs = node(match->op, lhs, binary(level + 1), at);
    }
  }
  Parsed unary() {
    if (++depth_ > kMaxDepth) throw error_at(here(), fmt::format("expression nested deeper than {}", kMaxDepth));
    Parsed e = unary_inner();
    --depth_;
    return e;
  }
  Parsed unary_inner() {
    const Position at = mark();
    if (accept('-')) {
      skip();
      if (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
        const auto literal = mark();
        const std::int64_t v = integer();
        if (v == INT64_MIN) throw error_at(literal, "integer literal out of range");
        return {Expr(-v)};
      }
      return node(isa::ExprOp::Neg, unary(), Parsed{}, at);
    }
    if (accept('!')) return node(isa::ExprOp::Not, unary(), Parsed{}, at);
    if (accept('(')) {
      Parsed e = binary(1);
      expect(')');
      return e;
    }
    skip();
    if (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) return {Expr(integer())};
    if (!peek_identifier()) fail("an expression");
    const std::string name = identifier("a name");
    for (auto [fn, op] : {std::pair{"min", isa::ExprOp::Min}, {"max", isa::ExprOp::Max}, {"ceil_div", isa::ExprOp::CeilDiv}})
      if (name == fn && peek('(')) {
        expect('(');
        Parsed a = binary(1);
        expect(',');
        Parsed b = binary(1);
        expect(')');
        return node(op, a, b, at);
      }
    return {Expr::var(name)};
  }
  std::vector<Expr> expression_list() {
    std::vector<Expr> out;
    expect('[');
    if (accept(']')) return out;
    do out.push_back(expression());
    while (accept(','));
    expect(']');
    return out;
  }

  Body block(int depth) {
    if (depth > kMaxDepth) throw error_at(here(), fmt::format("statements nested deeper than {}", kMaxDepth));
    expect('{');
    end_of_line();
    Body body;
    for (;;) {
      skip(true);
      if (pos_ >= text_.size()) fail("'}' to close the block");
      if (text_[pos_] == '}') {
        ++pos_;
        return body;
      }
      body.push_back(statement(depth));
    }
  }

  void end_of_line() {
    skip();
    if (pos_ < text_.size() && text_[pos_] != '\n') fail("the end of the line");
  }

  Statement statement(int depth) {
    const auto at = mark();
    Statement st;
    st.location = location(at);
    if (accept_keyword("let")) {
      Let let;
      let.name = identifier("a name after 'let'");
      expect('=');
      let.value = expression();
      end_of_line();
      st.node = let;
    } else if (accept_keyword("for")) {
      For loop;
      loop.var = identifier("a loop variable");
      keyword("in");
      keyword("range");
      expect('(');
      loop.begin = expression();
      expect(',');
      loop.end = expression();
      if (accept(',')) loop.step = expression();
      expect(')');
      if (accept_keyword("unroll")) {
        expect('(');
        const auto u = integer();
        if (u < 1 || u > 1024) throw error_at(here(), fmt::format("unroll({}) must be between 1 and 1024", u));
        loop.unroll = static_cast<int>(u);
        expect(')');
      }
      loop.body = block(depth + 1);
      end_of_line();
      st.node = std::move(loop);
    } else if (accept_keyword("if")) {
      If branch;
      branch.condition = expression();
      branch.then_body = block(depth + 1);
      if (accept_keyword("else")) branch.else_body = block(depth + 1);
      end_of_line();
      st.node = std::move(branch);
    } else {
      st.node = instruction(at);
    }
    return st;
  }

  Instruction instruction(Position at) {
    Instruction inst;
    inst.location = location(at);
    if (accept('%')) {
      inst.result = identifier("a value name after '%'");
      expect('=');
    }
    const auto op_at = mark();
    const std::string name = peek_identifier() ? identifier("an instruction") : "";
    const auto opcode = isa::find_opcode(name);
    if (!opcode) {
      pos_ = op_at.offset;
      std::vector<std::string> names;
      for (const auto& i : isa::instruction_table()) names.push_back(i.name);
      throw error_at(op_at, fmt::format("expected an instruction ({}), found {}", fmt::join(names, ", "), found()));
    }
    inst.opcode = *opcode;
    const auto& info = isa::info(*opcode);
    if (info.has_result && inst.result.empty())
      throw error_at(op_at, fmt::format("{} produces a value: write '%name = {} ...'", name, name));
    if (!info.has_result && !inst.result.empty())
      throw error_at(at, fmt::format("{} produces no value; remove '%{} ='", name, inst.result));
    for (std::size_t i = 0; i < info.operands.size(); ++i) {
      if (i > 0) expect(',');
      isa::Operand op;
      if (info.operands[i] == OperandKind::Param) {
        op.name = identifier("a pointer parameter name");
      } else {
        expect('%');
        op.name = identifier("a value name after '%'");
      }
      if (info.operands[i] == OperandKind::IndexedTensor) op.index = expression_list();
      inst.operands.push_back(std::move(op));
    }
    if (accept(':')) {
      if (info.declares == isa::TypeDecl::None)
        throw error_at(here(), fmt::format("{} takes no declared type; remove ': ...'", name));
      inst.type = declared_type(info.declares == isa::TypeDecl::Shared);
    } else if (info.declares != isa::TypeDecl::None && info.declares != isa::TypeDecl::OptionalRegister) {
      fail(fmt::format("': TYPE' ({} declares its result type)", name));
    }
    if (accept('{')) attributes(inst);
    for (unsigned bit = 1; bit <= isa::kLastAttr; bit <<= 1)
      if ((info.required_attrs & bit) && !has_attr(inst, bit))
        throw error_at(op_at, fmt::format("{} needs the attribute '{}'", name, isa::attr_name(static_cast<isa::Attr>(bit))));
    end_of_line();
    return inst;
  }

  static bool has_attr(const Instruction& inst, unsigned bit) {
    return isa::has_attribute(inst.attrs, static_cast<isa::Attr>(bit));
  }

  void attributes(Instruction& inst) {
    const auto& info = isa::info(inst.opcode);
    if (accept('}')) return;
    do {
      const auto at = mark();
      const std::string key = identifier("an attribute name");
      unsigned bit = 0;
      for (unsigned b = 1; b <= isa::kLastAttr; b <<= 1)
        if (key == isa::attr_name(static_cast<isa::Attr>(b))) bit = b;
      if (bit == 0 || !(info.allowed_attrs & bit)) {
        std::vector<std::string> allowed;
        for (unsigned b = 1; b <= isa::kLastAttr; b <<= 1)
          if (info.allowed_attrs & b) allowed.push_back(isa::attr_name(static_cast<isa::Attr>(b)));
        throw error_at(at, fmt::format("{} does not take the attribute '{}' (it takes: {})", info.name, key,
                                       allowed.empty() ? "none" : fmt::format("{}", fmt::join(allowed, ", "))));
      }
      if (has_attr(inst, bit)) throw error_at(at, fmt::format("attribute '{}' given twice", key));
      auto& a = inst.attrs;
      if (bit == isa::FINITE) {
        a.finite = true;
        continue;
      }
      if (bit == isa::MASKED) {  // masked, or masked=[D, ...]: only those dimensions may leave the view
        a.masked = true;
        if (accept('=')) a.masked_dims = dimension_list();
        continue;
      }
      expect('=');
      switch (bit) {
        case isa::DTYPE: a.dtype = dtype(); break;
        case isa::SHAPE: a.shape = expression_list(); break;
        case isa::STRIDES: a.strides = expression_list(); break;
        case isa::DIMS: a.dims = dimension_list(); break;
        case isa::OP: a.op = identifier("a reduction (add, max, min)"); break;
        case isa::N: a.n = integer(); break;
        case isa::INIT: a.init = number(); break;
        case isa::EXP: a.exp = integer(); break;
      }
    } while (accept(','));
    expect('}');
  }

  // [D, ...]: dimension numbers (dims=, masked=).
  std::vector<int> dimension_list() {
    std::vector<int> dims;
    expect('[');
    if (!accept(']')) {
      do {
        const auto d = integer();
        if (d < 0 || d > 64) throw error_at(here(), fmt::format("dimension {} out of range", d));
        dims.push_back(static_cast<int>(d));
      } while (accept(','));
      expect(']');
    }
    return dims;
  }

  TensorType declared_type(bool shared) {
    const auto at = mark();
    const bool has_shared = accept_keyword("shared");
    if (shared && !has_shared) fail("'shared' (this instruction declares a shared tile)");
    if (!shared && has_shared) throw error_at(at, "this instruction declares a register tile, not a shared one");
    const DataType t = dtype();
    layout::Shape shape;
    expect('[');
    do {
      const auto s_at = mark();
      const auto s = integer();
      if (s < 1 || s > (std::int64_t{1} << 30))
        throw error_at(s_at, fmt::format("tile dimension {} must be between 1 and 2^30", s));
      shape.push_back(s);
    } while (accept(','));
    expect(']');
    if (!accept('@')) {
      if (shared) fail("'@ SHARED_LAYOUT'");
      return TensorType::registers(t, shape);
    }
    skip();
    // The layout runs to the attribute block or the end of the line.
    const std::size_t start = pos_;
    int depth = 0;
    while (pos_ < text_.size() && text_[pos_] != '\n' && !(depth == 0 && text_[pos_] == '{')) {
      depth += text_[pos_] == '(' ? 1 : text_[pos_] == ')' ? -1 : 0;
      ++pos_;
    }
    std::string_view layout_text = text_.substr(start, pos_ - start);
    while (!layout_text.empty() && std::isspace(static_cast<unsigned char>(layout_text.back())))
      layout_text.remove_suffix(1);
    try {
      if (shared) {
        auto l = layout::parse_shared_layout(layout_text);
        if (l.shape() != shape)
          throw Error(fmt::format("the shared layout's shape [{}] differs from the tile's [{}]", fmt::join(l.shape(), ","),
                                  fmt::join(shape, ",")));
        return TensorType::shared_tile(t, l);
      }
      return TensorType::registers(t, shape, layout::parse_layout(layout_text));
    } catch (const Error& e) {
      throw error_at({start}, e.what());
    }
  }

  std::string_view text_;
  std::string_view file_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

Program parse(std::string_view text, std::string_view file) {
  // Far beyond any real program; keeps a stray binary or generated file from taking minutes to reject.
  constexpr std::size_t kMaxBytes = std::size_t{16} << 20;
  if (text.size() > kMaxBytes)
    throw Error(fmt::format("{}: {} bytes is more than the {} MiB a .vm file may hold", file, text.size(), kMaxBytes >> 20));
  return Parser(text, file).program();
}

}  // namespace anybit::vm
