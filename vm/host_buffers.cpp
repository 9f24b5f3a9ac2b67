#include "vm/host_buffers.h"

#include <fstream>
#include <random>

#include "isa/bitpack.h"
#include "isa/error.h"

namespace anybit::vm {

namespace {

void collect_views(const Body& body, std::vector<const Instruction*>& out) {
  for (const Statement& st : body) {
    if (const auto* inst = std::get_if<Instruction>(&st.node); inst && inst->opcode == Opcode::GlobalView)
      out.push_back(inst);
    if (const auto* loop = std::get_if<For>(&st.node)) collect_views(loop->body, out);
    if (const auto* branch = std::get_if<If>(&st.node)) {
      collect_views(branch->then_body, out);
      collect_views(branch->else_body, out);
    }
  }
}

// Buffers above this size are refused: a typo in a --param must not allocate the machine away.
constexpr std::int64_t kMaxBufferBytes = std::int64_t{4} << 30;

}  // namespace

std::map<std::string, std::int64_t> buffer_sizes(const Program& p, const std::map<std::string, std::int64_t>& scalars) {
  std::vector<const Instruction*> views;
  collect_views(p.body, views);
  std::map<std::string, std::int64_t> bytes;
  for (const Param& q : p.params)
    if (q.kind == ParamKind::Pointer) bytes[q.name] = 0;
  auto lookup = [&](const std::string& n) -> std::optional<std::int64_t> {
    auto it = scalars.find(n);
    if (it == scalars.end()) return std::nullopt;
    return it->second;
  };
  for (const Instruction* v : views) {
    const std::string& param = v->operands[0].name;
    const Param* q = p.find_param(param);
    if (!q || q->kind != ParamKind::Pointer) continue;
    std::int64_t last = 0;
    bool empty = false;
    for (std::size_t d = 0; d < v->attrs.shape->size(); ++d) {
      std::int64_t extent = 0, stride = 0;
      try {
        extent = isa::evaluate((*v->attrs.shape)[d], lookup);
        stride = isa::evaluate((*v->attrs.strides)[d], lookup);
      } catch (const Error& e) {
        throw Error(fmt::format("{}: cannot size buffer '{}' from view %{}: {} (view shapes and strides must use only "
                                "integer parameters, given with --param NAME=VALUE)",
                                v->location, param, v->result, e.what()));
      }
      if (extent <= 0) empty = true;
      if (stride < 0) throw Error(fmt::format("{}: view %{} has a negative stride", v->location, v->result));
      if (extent > 0 && stride > 0 && (extent - 1) > (std::int64_t{1} << 40) / stride)
        throw Error(fmt::format("{}: view %{} is too large", v->location, v->result));
      last += std::max<std::int64_t>(extent - 1, 0) * stride;
    }
    if (empty) continue;
    const std::int64_t size = static_cast<std::int64_t>(isa::packed_bytes(static_cast<std::size_t>(last + 1), q->dtype.bits()));
    if (size > kMaxBufferBytes)
      throw Error(fmt::format("{}: buffer '{}' would need {} bytes, over the 4 GiB limit of host runs", v->location,
                              param, size));
    bytes[param] = std::max(bytes[param], size);
  }
  return bytes;
}

HostBuffers random_buffers(const Program& p, const std::map<std::string, std::int64_t>& scalars, std::uint64_t seed) {
  HostBuffers out;
  const auto sizes = buffer_sizes(p, scalars);
  std::uint64_t stream = 0;
  for (const Param& q : p.params) {
    if (q.kind != ParamKind::Pointer) continue;
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + ++stream);
    auto& bytes = out[q.name];
    bytes.assign(static_cast<std::size_t>(sizes.at(q.name)), 0);
    const std::size_t count = bytes.size() * 8 / q.dtype.bits();
    std::uniform_real_distribution<double> unit(-1.0, 1.0);
    for (std::size_t i = 0; i < count; ++i) {
      std::uint32_t code;
      if (q.dtype.is_float()) {
        code = isa::encode(q.dtype, unit(rng));
      } else {
        code = static_cast<std::uint32_t>(rng()) & q.dtype.code_mask();
      }
      isa::write_code(bytes, i, q.dtype.bits(), code);
    }
  }
  return out;
}

Arguments as_arguments(HostBuffers& buffers, const std::map<std::string, std::int64_t>& scalars) {
  Arguments args;
  for (auto& [name, bytes] : buffers) args.buffers[name] = std::span<std::uint8_t>(bytes);
  args.scalars = scalars;
  return args;
}

std::uint64_t checksum(const std::vector<std::uint8_t>& bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

void dump_buffers(const HostBuffers& buffers, const std::filesystem::path& dir, bool overwrite) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(fmt::format("cannot create dump directory '{}': {}", dir.string(), ec.message()));
  for (const auto& [name, bytes] : buffers) {
    const auto path = dir / (name + ".bin");
    if (!overwrite && std::filesystem::exists(path))
      throw Error(fmt::format("'{}' exists; pass --force to overwrite it", path.string()));
    // Write to a temporary name and rename, so a reader never sees a partial file.
    const auto tmp = dir / (name + ".bin.tmp");
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
      if (!f) throw Error(fmt::format("cannot write '{}'", tmp.string()));
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw Error(fmt::format("cannot rename '{}' to '{}': {}", tmp.string(), path.string(), ec.message()));
  }
}

}  // namespace anybit::vm
