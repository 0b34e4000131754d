// L2 prefetch of weights a decode step will read soon (sm_90 bulk prefetch, `cp.async.bulk.prefetch.L2`): a small
// kernel, launched on a side stream while the main stream runs short, latency-bound kernels, so that memory
// stays busy in the gaps and the later GEMVs find their weights in L2. A hint only: it reads nothing back and
// writes nothing, so results never depend on it.
// Ranges are given directly (ptr, bytes) and/or through a device table of expert weights indexed by routed ids
// (table[ids[i]], each table_bytes long; ids outside [0, table_len) and null entries are skipped), so that the experts chosen on
// the device can be prefetched without a host round trip.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace ling::kernels {

struct L2PrefetchParams {
  static constexpr int kMaxRanges = 8;
  const void* ptr[kMaxRanges] = {};
  size_t bytes[kMaxRanges] = {};
  int n = 0;  // direct ranges used
  const void* const* table = nullptr;  // device table of weight addresses (indirect ranges)
  const int32_t* ids = nullptr;        // device ids into the table
  int n_ids = 0;
  int table_len = 0;
  size_t table_bytes = 0;  // bytes prefetched from each table[ids[i]]

  // Adds a direct range (null, empty or not 16-byte aligned ones are ignored); false when the list is full.
  bool add(const void* p, size_t b) {
    if (!p || b < 16 || (reinterpret_cast<uintptr_t>(p) & 15) != 0) return true;
    if (n == kMaxRanges) return false;
    ptr[n] = p, bytes[n] = b, ++n;
    return true;
  }
};

// Bytes per prefetch instruction (a multiple of 16; ranges are split into pieces of this size).
constexpr size_t kL2PrefetchPiece = size_t(64) << 10;

// Launches the prefetch (nothing when there is no range); table entries must be 16-byte aligned; sizes are
// rounded down to a multiple of 16.
void launch_l2_prefetch(const L2PrefetchParams& p, cudaStream_t stream);

}  // namespace ling::kernels
