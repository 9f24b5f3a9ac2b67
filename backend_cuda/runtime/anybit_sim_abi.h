// The plain structures a simulator launch passes between anybit and a kernel's shared object
// (backend_cuda/simulator.cpp fills them; anybit_sim.h reads them). Both sides include this header.
#pragma once

namespace ab::sim {

struct Buffer {
  const unsigned char* data;
  unsigned long long size;
  const char* name;
};

// global_sectors: distinct 32-byte sectors per warp-wide request.
struct Counters {
  unsigned long long global_read_bytes, global_write_bytes, global_sectors, shared_read_bytes, shared_write_bytes;
  unsigned long long mma, ldmatrix, cp_async, barriers, shuffles, memory_instructions;
  // Shared-memory wavefronts of warp-wide loads, stores and ldmatrix, and the minimum those requests
  // need (their excess is bank conflicts).
  unsigned long long shared_wavefronts, shared_ideal_wavefronts;
  unsigned long long arithmetic_instructions;  // lop3, prmt, shf, packed halves, conversions, float ops
};

struct LaunchSpec {
  void (*kernel)(void** args);  // filled in by the shared object
  void** args;
  int threads;
  long long grid[3];
  unsigned long long shared_bytes;
  const Buffer* buffers;
  int buffer_count;
  const char* const* instructions;  // VM instruction locations, by AB_AT index
  int instruction_count;
  unsigned long long seed;
  Counters* counters;
};

}  // namespace ab::sim
