// NCCL all-reduce for CUDA ranks driven from one thread (see nccl_all_reduce.h). The ranks' kernels run on
// their own streams: each device is synchronised before the collective and the collective's stream after it,
// so the sum is complete on every rank when the call returns (correctness first; overlap comes later).
#include "nccl_all_reduce.h"

#include <cuda_runtime.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <thread>
#include <vector>

#include "ling/core/error.h"
#include "ling/core/fs.h"

#if LING_HAS_NCCL
#include <nccl.h>
#endif

namespace ling {

#if LING_HAS_NCCL
namespace {

#define LING_NCCL_CHECK(stmt)                                                                                 \
  do {                                                                                                         \
    const ncclResult_t ling_r_ = (stmt);                                                                       \
    if (ling_r_ != ncclSuccess) LING_THROW(#stmt, " failed: ", ncclGetErrorString(ling_r_));                  \
  } while (0)
#define LING_CUDA_OK(stmt)                                                                                    \
  do {                                                                                                         \
    const cudaError_t ling_e_ = (stmt);                                                                        \
    if (ling_e_ != cudaSuccess) LING_THROW(#stmt, " failed: ", cudaGetErrorString(ling_e_));                  \
  } while (0)

struct Comms {
  std::vector<ncclComm_t> comms;
  std::vector<cudaStream_t> streams;
  ~Comms() {
    for (size_t r = 0; r < comms.size(); ++r) {
      cudaSetDevice(int(r));
      if (streams[r]) cudaStreamDestroy(streams[r]);
      if (comms[r]) ncclCommDestroy(comms[r]);
    }
  }
};

}  // namespace

AllReduce make_nccl_all_reduce(int64_t tp) {
  int n = 0;
  LING_CUDA_OK(cudaGetDeviceCount(&n));
  LING_CHECK(tp <= n, "--tp ", tp, ": only ", n, " CUDA device", n == 1 ? "" : "s", " visible");
  ::setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);  // NVLink multicast off unless the user set it
  auto c = std::make_shared<Comms>();
  c->comms.assign(size_t(tp), nullptr);
  c->streams.assign(size_t(tp), nullptr);
  std::vector<int> devs(static_cast<size_t>(tp));
  for (int64_t r = 0; r < tp; ++r) devs[size_t(r)] = int(r);
  LING_NCCL_CHECK(ncclCommInitAll(c->comms.data(), int(tp), devs.data()));
  for (int64_t r = 0; r < tp; ++r) {
    LING_CUDA_OK(cudaSetDevice(int(r)));
    LING_CUDA_OK(cudaStreamCreate(&c->streams[size_t(r)]));
  }
  return [c](std::vector<Buffer*>& parts) {
    LING_CHECK(parts.size() == c->comms.size(), "internal error: all-reduce over ", parts.size(), " buffers, ",
               c->comms.size(), " ranks");
    const size_t n = size_t(parts[0]->rows * parts[0]->cols);
    for (size_t r = 0; r < parts.size(); ++r) {
      LING_CUDA_OK(cudaSetDevice(int(r)));
      LING_CUDA_OK(cudaDeviceSynchronize());
    }
    LING_NCCL_CHECK(ncclGroupStart());
    for (size_t r = 0; r < parts.size(); ++r)
      LING_NCCL_CHECK(ncclAllReduce(parts[r]->data, parts[r]->data, n, ncclFloat, ncclSum, c->comms[r], c->streams[r]));
    LING_NCCL_CHECK(ncclGroupEnd());
    for (size_t r = 0; r < parts.size(); ++r) {
      LING_CUDA_OK(cudaSetDevice(int(r)));
      LING_CUDA_OK(cudaStreamSynchronize(c->streams[r]));
    }
  };
}

namespace {

// Polls `done` until it returns true; throws when another rank reported a failure or after the timeout.
void wait_for(const LaunchEnv& env, const std::function<bool()>& done, const std::string& what,
              const std::function<void()>& on_give_up = {}) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0;; ++i) {
    if (done()) return;
    if (i % 100 == 0) {
      std::ifstream failed(env.rendezvous + ".failed");
      std::string line;
      if (failed && std::getline(failed, line)) {
        if (on_give_up) on_give_up();
        LING_THROW("rank ", env.rank, ": stopping because ", line);
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s > env.timeout_s) {
        if (on_give_up) on_give_up();
        LING_THROW("rank ", env.rank, ": ", what, " did not complete within ", env.timeout_s,
                   " s (LING_NCCL_TIMEOUT; did another rank fail or not start?)");
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

struct RankComm {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int device = 0;
  ~RankComm() {
    cudaSetDevice(device);
    if (stream) cudaStreamDestroy(stream);
    if (comm) ncclCommDestroy(comm);
  }
};

}  // namespace

AllReduce make_nccl_all_reduce_rank(const LaunchEnv& env, int device) {
  ::setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);
  ncclUniqueId id;
  const std::string path = env.rendezvous;
  if (env.rank == 0) {
    LING_NCCL_CHECK(ncclGetUniqueId(&id));
    write_file_atomic(path, std::string(reinterpret_cast<const char*>(&id), sizeof id));
  } else {
    std::string bytes;
    wait_for(env, [&] {
      std::ifstream f(path, std::ios::binary);
      if (!f) return false;
      bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
      return bytes.size() == sizeof id;
    }, "the NCCL id exchange through " + path);
    std::memcpy(&id, bytes.data(), sizeof id);
  }
  auto c = std::make_shared<RankComm>();
  c->device = device;
  LING_CUDA_OK(cudaSetDevice(device));
  LING_CUDA_OK(cudaStreamCreate(&c->stream));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const ncclResult_t st = ncclCommInitRankConfig(&c->comm, env.world, id, env.rank, &config);
  LING_CHECK(st == ncclSuccess || st == ncclInProgress, "rank ", env.rank, ": ncclCommInitRankConfig failed: ",
             ncclGetErrorString(st));
  auto settled = [c, rank = env.rank] {
    ncclResult_t s = ncclSuccess;
    LING_NCCL_CHECK(ncclCommGetAsyncError(c->comm, &s));
    LING_CHECK(s == ncclSuccess || s == ncclInProgress, "rank ", rank, ": NCCL error ", ncclGetErrorString(s));
    return s == ncclSuccess;
  };
  auto abort = [c] {
    if (c->comm) ncclCommAbort(c->comm);
    c->comm = nullptr;
  };
  wait_for(env, settled, "the NCCL communicator set-up", abort);
  return [c, env, settled, abort](std::vector<Buffer*>& parts) {
    LING_CHECK(parts.size() == 1, "internal error: a rank process all-reduces its own buffer only");
    LING_CUDA_OK(cudaSetDevice(c->device));
    LING_CUDA_OK(cudaDeviceSynchronize());
    const size_t n = size_t(parts[0]->rows * parts[0]->cols);
    const ncclResult_t s = ncclAllReduce(parts[0]->data, parts[0]->data, n, ncclFloat, ncclSum, c->comm, c->stream);
    LING_CHECK(s == ncclSuccess || s == ncclInProgress, "rank ", env.rank, ": ncclAllReduce failed: ",
               ncclGetErrorString(s));
    wait_for(env, settled, "an NCCL all-reduce launch", abort);
    wait_for(env, [c] {
      const cudaError_t q = cudaStreamQuery(c->stream);
      LING_CHECK(q == cudaSuccess || q == cudaErrorNotReady, "all-reduce stream: ", cudaGetErrorString(q));
      return q == cudaSuccess;
    }, "an NCCL all-reduce", abort);
  };
}

#else

AllReduce make_nccl_all_reduce(int64_t) {
  LING_THROW("--tp with --backend cuda needs NCCL, which this build did not find");
}
AllReduce make_nccl_all_reduce_rank(const LaunchEnv&, int) {
  LING_THROW("a multi-process launch needs NCCL, which this build did not find");
}

#endif

}  // namespace ling
