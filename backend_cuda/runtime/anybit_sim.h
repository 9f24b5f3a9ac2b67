// anybit simulator runtime: compiled for the CPU into libanybit_sim.so (anybit_sim.cpp), which every
// simulated kernel's shared object links (never seen by NVRTC). One fiber (Boost.Context) per CUDA thread; bar_sync is a block rendezvous; mma, ldmatrix and
// shuffles are a rendezvous of a warp's 32 lanes, then computed once over every lane's registers from the
// PTX fragment tables; cp.async destinations are poisoned at issue and written at the issuing thread's
// wait_group; between rendezvous the fibers run in an order shuffled by the launch seed. Every memory
// access is checked (bounds of the launch buffers and of the planned shared memory, natural alignment)
// and counted.
#pragma once

#include <boost/context/fiber.hpp>
#include <boost/context/fixedsize_stack.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "anybit_runtime.cuh"
#include "anybit_sim_abi.h"

namespace ab {

thread_local SimThread* ab_sim_current = nullptr;

namespace sim {

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Wait { Running, Barrier, Collective, Done };
// Accesses the simulator makes on a thread's behalf, beyond the runtime's kRead/kWrite/kAtomicWrite:
// the cp.async destination poisoned at issue (checked, not counted) and the copy landing at wait_group
// (counted as bytes, not as a warp request).
enum SimAccess { kPoison = 3, kAsyncLand = 4 };
enum class Kind { None, Mma, Ldmatrix, Shfl };

struct Copy {
  u8* dst;
  std::vector<u8> data;
};

struct Thread {
  SimThread state;
  boost::context::fiber fiber;  // the thread while it is suspended
  boost::context::fiber sink;   // the scheduler while the thread runs
  Wait wait = Wait::Running;
  Kind kind = Kind::None;
  const char* shape = nullptr;
  u32* d = nullptr;
  const u32 *a = nullptr, *b = nullptr, *c = nullptr;
  const void* row = nullptr;
  int count = 0;
  bool trans = false;
  u32 value = 0, result = 0;
  int mask = 0;
  std::vector<Copy> uncommitted;
  std::deque<std::vector<Copy>> groups;
  // Position in the thread's instruction stream, to group the lanes' shared accesses into warp requests.
  int last_instruction = -2;
  long long execution = 0;
  int access_in_execution = 0;
};

// One lane's part of a warp-wide memory request (shared: offset in the block's shared memory; global:
// the address).
struct SharedAccess {
  int warp;
  long long execution;
  int sequence;
  u64 offset;
  int bytes;
  int lane;  // phases of a request take lanes in order
};

inline void next_access(Thread& t) {
  if (t.state.instruction != t.last_instruction) {
    t.last_instruction = t.state.instruction;
    ++t.execution;
    t.access_in_execution = 0;
  }
}

// Shadow state of one shared byte for race detection: who wrote and read it since the last barrier.
struct Shadow {
  int write_epoch = -1, writer = -1;
  int read_epoch = -1, reader = -1;  // reader -2: several threads
};

struct Launch {
  const LaunchSpec* spec;
  std::vector<Thread>* threads;
  u8* shared;
  int current = 0;
  std::string error;
  std::vector<Shadow> shadow;
  int epoch = 0;  // barriers passed in this block
  std::vector<SharedAccess> shared_accesses, global_accesses;
};

inline thread_local Launch* launch = nullptr;

inline Thread& me() { return (*launch->threads)[launch->current]; }

inline std::string where(const Thread& t) {
  std::string at = "unknown instruction";
  const int i = t.state.instruction;
  if (i >= 0 && i < launch->spec->instruction_count) at = launch->spec->instructions[i];
  return at + " (thread " + std::to_string(t.state.thread) + " of block (" + std::to_string(t.state.block[0]) + ", " +
         std::to_string(t.state.block[1]) + ", " + std::to_string(t.state.block[2]) + "))";
}

[[noreturn]] inline void fail(const std::string& message) { throw Failure(message); }

inline void yield(Wait w) {
  Thread& t = me();
  t.wait = w;
  t.sink = std::move(t.sink).resume();
}

inline void check_race(u64 offset, int bytes, int access) {
  const int me_id = launch->current;
  for (u64 b = offset; b < offset + (u64)bytes; ++b) {
    Shadow& s = launch->shadow[b];
    const bool written = s.write_epoch == launch->epoch && s.writer != me_id;
    if (access == kRead) {
      if (written)
        fail("shared-memory race: reads byte " + std::to_string(b) + " that thread " + std::to_string(s.writer) +
             " wrote since the last barrier (missing sync_threads?)");
      if (s.read_epoch != launch->epoch) s.read_epoch = launch->epoch, s.reader = me_id;
      else if (s.reader != me_id) s.reader = -2;
    } else if (access == kWrite) {
      if (written)
        fail("shared-memory race: writes byte " + std::to_string(b) + " that thread " + std::to_string(s.writer) +
             " also wrote since the last barrier");
      if (s.read_epoch == launch->epoch && s.reader != me_id)
        fail("shared-memory race: writes byte " + std::to_string(b) + " that " +
             (s.reader == -2 ? std::string("other threads") : "thread " + std::to_string(s.reader)) +
             " read since the last barrier (missing sync_threads?)");
      s.write_epoch = launch->epoch;
      s.writer = me_id;
    }
    // Atomic read-modify-writes of sub-byte codes by several threads are not races.
  }
}

inline void check_access(const void* p, int bytes, int align, int access) {
  const bool write = access != kRead;
  const int race_kind = access == kPoison || access == kAsyncLand ? kWrite : access;
  const u8* q = static_cast<const u8*>(p);
  Counters& k = *launch->spec->counters;
  ++k.memory_instructions;
  if (q >= launch->shared && q < launch->shared + launch->spec->shared_bytes) {
    const u64 offset = (u64)(q - launch->shared);
    if (offset + (u64)bytes > launch->spec->shared_bytes)
      fail(std::to_string(bytes) + "-byte shared-memory access at offset " + std::to_string(offset) +
           " goes beyond the planned " + std::to_string(launch->spec->shared_bytes) + " bytes");
    if (reinterpret_cast<std::uintptr_t>(q) % (unsigned)align) fail("misaligned " + std::to_string(align) + "-byte shared-memory access at offset " + std::to_string(offset));
    check_race(offset, bytes, race_kind);
    if (access != kPoison) (write ? k.shared_write_bytes : k.shared_read_bytes) += (u64)bytes;
    if (access == kRead || access == kWrite) {
      Thread& t = me();
      next_access(t);
      launch->shared_accesses.push_back({t.state.thread / 32, t.execution, t.access_in_execution++, offset, bytes, t.state.thread % 32});
    }
    return;
  }
  for (int i = 0; i < launch->spec->buffer_count; ++i) {
    const Buffer& b = launch->spec->buffers[i];
    if (q >= b.data && q < b.data + b.size + (b.size == 0)) {
      const u64 offset = (u64)(q - b.data);
      if (offset + (u64)bytes > b.size)
        fail("out-of-bounds global access: " + std::to_string(bytes) + " bytes at offset " + std::to_string(offset) +
             " of buffer '" + b.name + "' (" + std::to_string(b.size) + " bytes)");
      if (reinterpret_cast<std::uintptr_t>(q) % (unsigned)align)
        fail("misaligned " + std::to_string(align) + "-byte global access at offset " + std::to_string(offset) + " of buffer '" + b.name + "'");
      (write ? k.global_write_bytes : k.global_read_bytes) += (u64)bytes;
      Thread& t = me();
      next_access(t);
      // Sectors as on a GPU, whose allocations are 256-byte aligned: by buffer and offset, not host address.
      launch->global_accesses.push_back({t.state.thread / 32, t.execution, t.access_in_execution++, ((u64)i << 48) | offset, bytes});
      return;
    }
  }
  if (q >= launch->shared - 4096 && q < launch->shared + launch->spec->shared_bytes + 4096)
    fail("shared-memory access beyond the planned " + std::to_string(launch->spec->shared_bytes) + " bytes");
  // Name the buffer the address ran off (the closest one below it), if any is near.
  const Buffer* below = nullptr;
  for (int i = 0; i < launch->spec->buffer_count; ++i) {
    const Buffer& b = launch->spec->buffers[i];
    if (b.data <= q && (!below || b.data > below->data)) below = &b;
  }
  if (below && (u64)(q - below->data) < below->size + (u64{1} << 30))
    fail("out-of-bounds global access: " + std::to_string(bytes) + " bytes at offset " + std::to_string(q - below->data) +
         " of buffer '" + below->name + "' (" + std::to_string(below->size) + " bytes)");
  fail("global access at an address outside every launch buffer (out of bounds)");
}

// ---- warp collectives, computed once for all 32 lanes from the PTX fragment tables

inline float half_to_float(u32 h, bool bf16) { return bf16 ? bf16_to_f32(h) : f16_to_f32(h); }

inline void compute_mma(std::vector<Thread*>& lanes) {
  const std::string shape = lanes[0]->shape;
  const bool int8 = shape.rfind("m16n8k32", 0) == 0;
  const bool bf16 = shape.find("bf16") != std::string::npos;
  const bool f16_acc = shape == "m16n8k16.f16.f16.f16.f16";
  const bool unsigned8 = shape.find(".u8") != std::string::npos;
  const int K = int8 ? 32 : 16;
  double A[16][32] = {}, B[32][8] = {}, C[16][8] = {};
  for (int l = 0; l < 32; ++l) {
    const Thread& t = *lanes[l];
    const int g = l >> 2, q = l & 3;
    if (int8) {
      for (int i = 0; i < 16; ++i) {
        const u32 byte = (t.a[i / 4] >> (8 * (i % 4))) & 0xFF;
        const int row = (i < 4 || (i >= 8 && i < 12)) ? g : g + 8, col = 4 * q + (i & 3) + (i >= 8 ? 16 : 0);
        A[row][col] = unsigned8 ? (double)byte : (double)(int8_t)byte;
      }
      for (int i = 0; i < 8; ++i) {
        const u32 byte = (t.b[i / 4] >> (8 * (i % 4))) & 0xFF;
        B[4 * q + (i & 3) + (i >= 4 ? 16 : 0)][g] = unsigned8 ? (double)byte : (double)(int8_t)byte;
      }
      for (int i = 0; i < 4; ++i) C[g + (i >= 2 ? 8 : 0)][2 * q + (i & 1)] = (double)(i32)t.c[i];
    } else {
      for (int i = 0; i < 8; ++i) {
        const u32 h = (t.a[i / 2] >> (16 * (i & 1))) & 0xFFFF;
        const bool low_row = i == 0 || i == 1 || i == 4 || i == 5;
        A[low_row ? g : g + 8][2 * q + (i & 1) + (i >= 4 ? 8 : 0)] = half_to_float(h, bf16);
      }
      for (int i = 0; i < 4; ++i) {
        const u32 h = (t.b[i / 2] >> (16 * (i & 1))) & 0xFFFF;
        B[2 * q + (i & 1) + (i >= 2 ? 8 : 0)][g] = half_to_float(h, bf16);
      }
      for (int i = 0; i < 4; ++i) {
        const double v = f16_acc ? f16_to_f32((t.c[i / 2] >> (16 * (i & 1))) & 0xFFFF) : as_float(t.c[i]);
        C[g + (i >= 2 ? 8 : 0)][2 * q + (i & 1)] = v;
      }
    }
  }
  for (int l = 0; l < 32; ++l) {
    Thread& t = *lanes[l];
    const int g = l >> 2, q = l & 3;
    u32 out[4] = {};
    for (int i = 0; i < 4; ++i) {
      const int row = g + (i >= 2 ? 8 : 0), col = 2 * q + (i & 1);
      double acc = C[row][col];
      for (int k = 0; k < K; ++k) acc += A[row][k] * B[k][col];  // exact: products and sums fit a double
      if (int8) out[i] = (u32)(i32)(long long)acc;
      else if (f16_acc) out[i / 2] |= f32_to_f16((float)acc) << (16 * (i & 1));
      else out[i] = as_u32((float)acc);
    }
    const int words = f16_acc ? 2 : 4;
    for (int w = 0; w < words; ++w) t.d[w] = out[w];
  }
  ++launch->spec->counters->mma;
}

inline void compute_ldmatrix(std::vector<Thread*>& lanes) {
  const int count = lanes[0]->count;
  const bool trans = lanes[0]->trans;
  u32 m[4][8][8];  // matrix, row, column (b16)
  for (int q = 0; q < count; ++q)
    for (int r = 0; r < 8; ++r) {
      Thread& src = *lanes[8 * q + r];
      launch->current = src.state.thread;
      check_access(src.row, 16, 16, kRead);
      const unsigned short* row = static_cast<const unsigned short*>(src.row);
      for (int c = 0; c < 8; ++c) m[q][r][c] = row[c];
    }
  for (int l = 0; l < 32; ++l)
    for (int q = 0; q < count; ++q) {
      const int r = l / 4, c = 2 * (l % 4);
      const u32 lo = trans ? m[q][c][r] : m[q][r][c], hi = trans ? m[q][c + 1][r] : m[q][r][c + 1];
      lanes[l]->d[q] = lo | (hi << 16);
    }
  ++launch->spec->counters->ldmatrix;
}

inline void compute_shfl(std::vector<Thread*>& lanes) {
  for (int l = 0; l < 32; ++l) lanes[l]->result = lanes[(l ^ lanes[l]->mask) & 31]->value;
  ++launch->spec->counters->shuffles;
}

inline const char* kind_name(const Thread& t) {
  switch (t.kind) {
    case Kind::Mma: return "mma.sync";
    case Kind::Ldmatrix: return "ldmatrix";
    case Kind::Shfl: return "shfl.sync";
    default: return "?";
  }
}

// Wavefronts of the block's warp-wide shared requests: lanes are served in phases of 128 bytes (32 lanes
// of 4 bytes, 16 of 8, 8 of 16); in each phase a bank (4-byte word address mod 32) serves one distinct
// word per wavefront.
inline void sort_requests(std::vector<SharedAccess>& accesses) {
  std::sort(accesses.begin(), accesses.end(), [](const SharedAccess& a, const SharedAccess& b) {
    return std::tie(a.warp, a.execution, a.sequence, a.lane) < std::tie(b.warp, b.execution, b.sequence, b.lane);
  });
}

// 32-byte sectors of the block's warp-wide global requests: distinct sectors per request, as a coalescing
// memory system moves them.
inline void count_sectors(std::vector<SharedAccess>& accesses, Counters& k) {
  sort_requests(accesses);
  for (std::size_t i = 0; i < accesses.size();) {
    std::size_t j = i;
    std::vector<u64> sectors;
    while (j < accesses.size() && accesses[j].warp == accesses[i].warp && accesses[j].execution == accesses[i].execution &&
           accesses[j].sequence == accesses[i].sequence) {
      for (u64 s = accesses[j].offset / 32; s <= (accesses[j].offset + (u64)accesses[j].bytes - 1) / 32; ++s) sectors.push_back(s);
      ++j;
    }
    std::sort(sectors.begin(), sectors.end());
    k.global_sectors += (u64)(std::unique(sectors.begin(), sectors.end()) - sectors.begin());
    i = j;
  }
  accesses.clear();
}

inline void count_wavefronts(std::vector<SharedAccess>& accesses, Counters& k) {
  sort_requests(accesses);
  for (std::size_t i = 0; i < accesses.size();) {
    std::size_t j = i;
    while (j < accesses.size() && accesses[j].warp == accesses[i].warp && accesses[j].execution == accesses[i].execution &&
           accesses[j].sequence == accesses[i].sequence)
      ++j;
    const int bytes = std::max(4, accesses[i].bytes);
    const std::size_t per_phase = std::max<std::size_t>(1, 128 / (std::size_t)bytes);
    for (std::size_t p = i; p < j; p += per_phase) {
      std::vector<std::vector<u64>> banks(32);
      u64 total_words = 0;
      for (std::size_t q = p; q < std::min(j, p + per_phase); ++q)
        for (u64 w = accesses[q].offset / 4; w <= (accesses[q].offset + (u64)accesses[q].bytes - 1) / 4; ++w) {
          auto& bank = banks[w % 32];
          if (std::find(bank.begin(), bank.end(), w) == bank.end()) bank.push_back(w), ++total_words;
        }
      std::size_t worst = 0;
      for (const auto& bank : banks) worst = std::max(worst, bank.size());
      k.shared_wavefronts += worst;
      k.shared_ideal_wavefronts += (total_words + 31) / 32;
    }
    i = j;
  }
  accesses.clear();
}

// Runs one block to completion; returns an error message or "".
inline std::string run_block(const LaunchSpec& spec, const long long block[3], std::vector<u8>& shared, std::mt19937_64& rng) {
  std::vector<Thread> threads(spec.threads);
  Launch l{&spec, &threads, shared.data(), 0, {}, std::vector<Shadow>(spec.shared_bytes + 1), 0};
  launch = &l;
  for (int i = 0; i < spec.threads; ++i) {
    Thread& t = threads[i];
    t.state.thread = i;
    for (int d = 0; d < 3; ++d) t.state.block[d] = (int)block[d];
    t.state.shared = shared.data();
    t.fiber = boost::context::fiber(std::allocator_arg, boost::context::fixedsize_stack(256 * 1024),
                                    [&threads, i, &spec](boost::context::fiber&& sink) {
                                      threads[i].sink = std::move(sink);
                                      try {
                                        spec.kernel(spec.args);
                                        if (!me().uncommitted.empty() || !me().groups.empty())
                                          fail("the thread exits with cp.async copies in flight");
                                      } catch (const Failure& e) {
                                        if (launch->error.empty()) launch->error = where(me()) + ": " + e.what();
                                      } catch (const std::exception& e) {
                                        if (launch->error.empty()) launch->error = where(me()) + ": " + e.what();
                                      }
                                      me().wait = Wait::Done;
                                      return std::move(me().sink);
                                    });
  }
  std::vector<int> order(spec.threads);
  for (int i = 0; i < spec.threads; ++i) order[i] = i;
  for (;;) {
    std::shuffle(order.begin(), order.end(), rng);
    for (int i : order) {
      if (threads[i].wait != Wait::Running) continue;
      l.current = i;
      ab_sim_current = &threads[i].state;
      threads[i].fiber = std::move(threads[i].fiber).resume();
      if (!l.error.empty()) return l.error;
    }
    // Every thread now waits or is done: complete whole-warp collectives first, then barriers.
    bool released = false, all_done = true;
    for (int w = 0; w * 32 < spec.threads; ++w) {
      std::vector<Thread*> lanes;
      for (int lane = 0; lane < 32 && w * 32 + lane < spec.threads; ++lane) lanes.push_back(&threads[w * 32 + lane]);
      int at_collective = 0;
      for (Thread* t : lanes) at_collective += t->wait == Wait::Collective;
      if (at_collective == 0) continue;
      if (at_collective != (int)lanes.size() || lanes.size() != 32) continue;
      for (Thread* t : lanes)
        if (t->kind != lanes[0]->kind || (t->kind == Kind::Mma && std::string(t->shape) != lanes[0]->shape) ||
            (t->kind == Kind::Ldmatrix && (t->count != lanes[0]->count || t->trans != lanes[0]->trans)))
          return where(*t) + ": lanes of warp " + std::to_string(w) + " are at different collectives (" + kind_name(*t) +
                 " and " + kind_name(*lanes[0]) + ")";
      if (lanes[0]->kind == Kind::Mma) compute_mma(lanes);
      if (lanes[0]->kind == Kind::Ldmatrix) compute_ldmatrix(lanes);
      if (lanes[0]->kind == Kind::Shfl) compute_shfl(lanes);
      if (!l.error.empty()) return l.error;
      for (Thread* t : lanes) t->wait = Wait::Running;
      released = true;
    }
    if (released) continue;
    int at_barrier = 0, done = 0, at_collective = 0;
    for (const Thread& t : threads) {
      at_barrier += t.wait == Wait::Barrier;
      done += t.wait == Wait::Done;
      at_collective += t.wait == Wait::Collective;
      all_done = all_done && t.wait == Wait::Done;
    }
    if (all_done) {
      count_wavefronts(l.shared_accesses, *spec.counters);
      count_sectors(l.global_accesses, *spec.counters);
      return "";
    }
    if (at_barrier == spec.threads) {
      for (Thread& t : threads) t.wait = Wait::Running;
      ++l.epoch;
      ++spec.counters->barriers;
      continue;
    }
    // Stuck: some threads wait for others that will never come.
    for (const Thread& t : threads)
      if (t.wait == Wait::Collective)
        return where(t) + ": lanes at different collectives: this lane waits at " + kind_name(t) +
               " but not every lane of its warp does";
    for (const Thread& t : threads)
      if (t.wait == Wait::Barrier)
        return where(t) + ": barrier divergence: this thread waits at bar.sync while " + std::to_string(done) +
               " thread(s) have exited";
    return "the block is stuck";
  }
}

inline std::string run(const LaunchSpec& spec) {
  std::mt19937_64 rng(spec.seed);
  std::vector<u8> shared;
  for (long long z = 0; z < spec.grid[2]; ++z)
    for (long long y = 0; y < spec.grid[1]; ++y)
      for (long long x = 0; x < spec.grid[0]; ++x) {
        shared.assign(spec.shared_bytes + 1, 0xA5);  // uninitialized shared memory is not zero
        const long long block[3] = {x, y, z};
        std::string error = run_block(spec, block, shared, rng);
        launch = nullptr;
        ab_sim_current = nullptr;
        if (!error.empty()) return error;
      }
  return "";
}

}  // namespace sim

// ---- the hooks the runtime header calls on the CPU

void ab_sim_access(const void* p, int bytes, int align, int access) { sim::check_access(p, bytes, align, access); }

void ab_sim_bar_sync() { sim::yield(sim::Wait::Barrier); }

void ab_sim_count() {
  if (sim::launch) ++sim::launch->spec->counters->arithmetic_instructions;
}

void ab_sim_cp_async(void* dst, const void* src, int bytes, int src_bytes) {
  if (src_bytes < 0 || src_bytes > bytes) sim::fail("cp.async src-size " + std::to_string(src_bytes) + " outside 0.." + std::to_string(bytes));
  if ((reinterpret_cast<std::uintptr_t>(dst) % (unsigned)bytes) != 0) sim::fail("misaligned " + std::to_string(bytes) + "-byte cp.async destination");
  sim::Copy copy{static_cast<u8*>(dst), std::vector<u8>((std::size_t)bytes, 0)};
  if (src_bytes > 0) {
    if ((reinterpret_cast<std::uintptr_t>(src) % (unsigned)bytes) != 0) sim::fail("misaligned " + std::to_string(bytes) + "-byte cp.async source");
    sim::check_access(src, src_bytes, 1, kRead);
    std::memcpy(copy.data.data(), src, (std::size_t)src_bytes);  // the rest is the zero-fill
  }
  sim::check_access(dst, bytes, bytes, sim::kPoison);
  std::memset(dst, 0xFF, (std::size_t)bytes);  // poisoned until the issuing thread's wait_group
  sim::me().uncommitted.push_back(std::move(copy));
  ++sim::launch->spec->counters->cp_async;
}

void ab_sim_cp_async_commit() {
  sim::Thread& t = sim::me();
  t.groups.push_back(std::move(t.uncommitted));
  t.uncommitted.clear();
}

void ab_sim_cp_async_wait(int n) {
  sim::Thread& t = sim::me();
  while ((int)t.groups.size() > n) {
    for (const sim::Copy& c : t.groups.front()) {
      sim::check_access(c.dst, (int)c.data.size(), 1, sim::kAsyncLand);  // the copy lands now, written by this thread
      std::memcpy(c.dst, c.data.data(), c.data.size());
    }
    t.groups.pop_front();
  }
}

void ab_sim_ldmatrix(u32* d, const void* row, int count, bool trans) {
  sim::Thread& t = sim::me();
  t.kind = sim::Kind::Ldmatrix;
  t.d = d;
  t.row = row;
  t.count = count;
  t.trans = trans;
  sim::yield(sim::Wait::Collective);
}

void ab_sim_mma(const char* shape, u32* d, const u32* a, const u32* b, const u32* c) {
  sim::Thread& t = sim::me();
  t.kind = sim::Kind::Mma;
  t.shape = shape;
  // d may alias c: the inputs are read before any lane's d is written (compute_mma gathers first).
  t.d = d;
  t.a = a;
  t.b = b;
  t.c = c;
  sim::yield(sim::Wait::Collective);
}

u32 ab_sim_shfl_xor(u32 value, int lane_mask) {
  sim::Thread& t = sim::me();
  t.kind = sim::Kind::Shfl;
  t.value = value;
  t.mask = lane_mask;
  sim::yield(sim::Wait::Collective);
  return sim::me().result;
}

}  // namespace ab
