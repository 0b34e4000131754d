// MoE prefill orchestration (moe_prefill.h): parameter checks, workspace layout, the device permutation and
// gather, then either the grouped GEMMs (no host round trip) or per-expert cuBLASLt GEMMs over side streams
// (one copy of the E + 1 row offsets to pinned host memory and one stream sync), then the combine.
#include "ling/kernels/moe_prefill.h"

#include <algorithm>

#include "common/check.h"
#include "ling/kernels/gemm_lt.h"
#include "moe/moe_prefill_kernels.h"

namespace ling::kernels {

namespace dt = moe_prefill_detail;

namespace {

size_t align256(size_t b) { return (b + 255) & ~size_t(255); }

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

void check_dims(int64_t n, int64_t k, int64_t E, int64_t H, int64_t I) {
  const char* who = "moe prefill";
  LING_CHECK(k >= 1 && k <= 32, who, ": k = ", k, " outside [1, 32]");
  LING_CHECK(E >= 1 && E <= kMoePrefillMaxExperts, who, ": E = ", E, " outside [1, ", kMoePrefillMaxExperts, "]");
  LING_CHECK(n >= 0 && n * k < (int64_t(1) << 31), who, ": n = ", n, " out of range (n·k must be < 2^31)");
  LING_CHECK(H > 0 && I > 0 && H % 8 == 0 && I % 8 == 0 && H < (int64_t(1) << 30) && I < (int64_t(1) << 30), who,
             ": H = ", H, " and I = ", I, " must be positive multiples of 8");
}

}  // namespace

MoePrefillLayout moe_prefill_layout(int64_t n, int64_t k, int64_t E, int64_t H, int64_t I) {
  check_dims(n, k, E, H, I);
  const size_t nk = size_t(n * k);
  MoePrefillLayout l{};
  size_t at = 0;
  auto take = [&](size_t bytes) {
    const size_t here = at;
    at += align256(bytes);
    return here;
  };
  l.counts = take(size_t(E) * 4);
  l.offsets = take(size_t(E + 1) * 4);
  l.tiles = take(size_t(E + 1) * 4);
  l.perm = take(nk * 4);
  l.row_of_slot = take(nk * 4);
  l.xp = take(nk * size_t(H) * 2);
  l.act = take(nk * size_t(I) * 2);
  // The PerExpert path's fp32 gate_up [nk, 2I] dies (SwiGLU) before the first down GEMM writes y [nk, H]:
  // one region serves both.
  l.gu = take(nk * size_t(std::max(2 * I, H)) * 4);
  l.y = l.gu;
  l.total = at;
  return l;
}

size_t moe_prefill_workspace_bytes(int64_t n, int64_t k, int64_t E, int64_t H, int64_t I) {
  return moe_prefill_layout(n, k, E, H, I).total;
}

struct MoePrefill::Lane {
  cudaStream_t stream = nullptr;
  cudaEvent_t done = nullptr;
  std::unique_ptr<LtGemm> gemm;
  ~Lane() {
    gemm.reset();
    if (done) cudaEventDestroy(done);
    if (stream) cudaStreamDestroy(stream);
  }
};

MoePrefill::MoePrefill(int lanes) {
  LING_CHECK(lanes >= 0 && lanes <= 16, "moe prefill: lanes = ", lanes, " outside [0, 16]");
  dt::prepare_grouped_gemm();
  LING_CUDA_CHECK(cudaMallocHost(&host_offsets_, sizeof(int32_t) * size_t(kMoePrefillMaxExperts + 1)));
  LING_CUDA_CHECK(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
  for (int i = 0; i < lanes; ++i) {
    auto l = std::make_unique<Lane>();
    LING_CUDA_CHECK(cudaStreamCreateWithFlags(&l->stream, cudaStreamNonBlocking));
    LING_CUDA_CHECK(cudaEventCreateWithFlags(&l->done, cudaEventDisableTiming));
    l->gemm = std::make_unique<LtGemm>(l->stream);
    lanes_.push_back(std::move(l));
  }
}

MoePrefill::~MoePrefill() {
  lanes_.clear();
  if (fork_) cudaEventDestroy(fork_);
  if (host_offsets_) cudaFreeHost(host_offsets_);
}

MoeGemmPath MoePrefill::resolve(const MoePrefillParams& p) const {
  if (p.path != MoeGemmPath::Auto) return p.path;
  const bool big = p.H * p.I >= (int64_t(1) << 23);
  return big && !lanes_.empty() && p.gate_up_host && p.down_host ? MoeGemmPath::PerExpert : MoeGemmPath::Grouped;
}

void MoePrefill::run(const MoePrefillParams& p, cudaStream_t stream) {
  check_dims(p.n, p.k, p.E, p.H, p.I);
  const char* who = "moe prefill";
  if (p.n == 0) return;
  LING_CHECK(p.x && p.topk_ids && p.topk_weights && p.out && p.workspace, who,
             ": a null x, topk_ids, topk_weights, out or workspace pointer");
  LING_CHECK(p.gate_up_dev && p.down_dev, who, ": the device expert tables (gate_up_dev, down_dev) are null");
  LING_CHECK(aligned16(p.x) && aligned16(p.out), who, ": x and out must be 16-byte aligned");
  LING_CHECK((reinterpret_cast<uintptr_t>(p.workspace) & 255) == 0, who, ": the workspace is not 256-byte aligned");
  const MoeGemmPath path = resolve(p);
  if (path == MoeGemmPath::PerExpert) {
    LING_CHECK(!lanes_.empty(), who, ": the PerExpert path needs a runner built with lanes > 0");
    LING_CHECK(p.gate_up_host && p.down_host, who, ": the PerExpert path needs the host expert tables");
  }
  const int64_t n = p.n, k = p.k, E = p.E, H = p.H, I = p.I, nk = n * k;
  const MoePrefillLayout l = moe_prefill_layout(n, k, E, H, I);
  char* ws = static_cast<char*>(p.workspace);
  auto at = [&](size_t off) { return static_cast<void*>(ws + off); };
  int32_t* offsets = static_cast<int32_t*>(at(l.offsets));
  int32_t* tiles = static_cast<int32_t*>(at(l.tiles));
  int32_t* row_of_slot = static_cast<int32_t*>(at(l.row_of_slot));
  uint16_t* xp = static_cast<uint16_t*>(at(l.xp));
  uint16_t* act = static_cast<uint16_t*>(at(l.act));
  float* y = static_cast<float*>(at(l.y));

  dt::Routing r;
  r.ids = p.topk_ids, r.weights = p.topk_weights, r.gate_up = p.gate_up_dev, r.down = p.down_dev;
  r.counts = static_cast<int32_t*>(at(l.counts)), r.offsets = offsets, r.tiles = tiles;
  r.perm = static_cast<int32_t*>(at(l.perm)), r.row_of_slot = row_of_slot, r.n = n, r.k = k, r.E = E;
  LING_CUDA_CHECK(cudaMemsetAsync(row_of_slot, 0xff, size_t(nk) * 4, stream));  // −1: no row
  dt::launch_permute(r, stream);
  dt::launch_gather(p.x, r.perm, offsets, E, xp, nk, k, H, stream);

  if (path == MoeGemmPath::Grouped) {
    dt::launch_grouped_gate_up(xp, p.gate_up_dev, offsets, tiles, act, nk, E, H, I, stream);
    dt::launch_grouped_down(act, p.down_dev, offsets, tiles, y, nk, E, H, I, stream);
  } else {
    LING_CUDA_CHECK(cudaMemcpyAsync(host_offsets_, offsets, sizeof(int32_t) * size_t(E + 1), cudaMemcpyDeviceToHost,
                                    stream));
    LING_CUDA_CHECK(cudaStreamSynchronize(stream));
    // Experts to lanes: each to the lane with the fewest rows so far (deterministic; results do not depend on it).
    std::vector<std::vector<int64_t>> work(lanes_.size());
    std::vector<int64_t> load(lanes_.size(), 0);
    for (int64_t e = 0; e < E; ++e) {
      const int64_t c = host_offsets_[e + 1] - host_offsets_[e];
      if (c == 0) continue;  // counts are 0 for experts not held
      LING_CHECK(p.gate_up_host[e] && p.down_host[e], who, ": expert ", e,
                 " is held in the device tables but null in the host tables");
      const size_t li = size_t(std::min_element(load.begin(), load.end()) - load.begin());
      work[li].push_back(e);
      load[li] += c;
    }
    float* gu = static_cast<float*>(at(l.gu));
    auto fan_out = [&](bool gate_up) {
      LING_CUDA_CHECK(cudaEventRecord(fork_, stream));
      for (size_t li = 0; li < lanes_.size(); ++li) {
        Lane& lane = *lanes_[li];
        LING_CUDA_CHECK(cudaStreamWaitEvent(lane.stream, fork_, 0));
        for (int64_t e : work[li]) {
          const int64_t off = host_offsets_[e], c = host_offsets_[e + 1] - off;
          if (gate_up) lane.gemm->run(p.gate_up_host[e], xp + off * H, gu + off * 2 * I, c, 2 * I, H);
          else lane.gemm->run(p.down_host[e], act + off * I, y + off * H, c, H, I);
        }
        LING_CUDA_CHECK(cudaEventRecord(lane.done, lane.stream));
        LING_CUDA_CHECK(cudaStreamWaitEvent(stream, lane.done, 0));
      }
    };
    fan_out(true);
    dt::launch_swiglu_rows(gu, offsets, E, act, nk, I, stream);
    fan_out(false);
  }
  dt::launch_combine(y, row_of_slot, p.topk_weights, p.out, n, k, H, p.accumulate, stream);
}

}  // namespace ling::kernels
