// Host buffers for running a program from the command line: sized from the program's global views,
// filled from a seed, checksummed, dumped. Shared by `vmc interp` and, later, `vmc run`.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "vm/interpreter.h"

namespace anybit::vm {

using HostBuffers = std::map<std::string, std::vector<std::uint8_t>>;

// Bytes each pointer parameter needs: the largest element any of its global views reaches, plus one.
// anybit::Error when a view's shape or strides use something other than integer parameters.
std::map<std::string, std::int64_t> buffer_sizes(const Program& p, const std::map<std::string, std::int64_t>& scalars);

// Buffers of buffer_sizes(), filled deterministically from `seed`: floats with values in [-1, 1], integer
// formats with uniformly random codes.
HostBuffers random_buffers(const Program& p, const std::map<std::string, std::int64_t>& scalars, std::uint64_t seed);

Arguments as_arguments(HostBuffers& buffers, const std::map<std::string, std::int64_t>& scalars);

// FNV-1a, 64 bits.
std::uint64_t checksum(const std::vector<std::uint8_t>& bytes);

// Writes DIR/NAME.bin for each buffer (raw little-endian bytes). Refuses to replace existing files unless
// `overwrite` is set.
void dump_buffers(const HostBuffers& buffers, const std::filesystem::path& dir, bool overwrite);

}  // namespace anybit::vm
