// ktrace: a kernel timeline of any CUDA program through CUPTI, for machines without Nsight Systems.
// Built as a CUDA injection library (libling_ktrace.so): run a program with
//   CUDA_INJECTION64_PATH=/path/libling_ktrace.so LING_KTRACE_OUT=trace.csv ling bench ...
// and the driver calls InitializeInjection() at cuInit; it records every kernel with
// CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL (kernels are not serialised: programmatic dependent launches still overlap)
// and writes one CSV row per kernel at exit (written to OUT.tmp, then renamed):
//   start_ns,end_ns,stream,correlation,graph,graph_node,grid,block,regs,smem,name (demangled)
// start/end: GPU timestamps; correlation: the launching API call (one cudaGraphLaunch for all of its kernels).
// scripts/ktrace-summary.py turns it into per-kernel figures of the last graph launches.
#include <cupti.h>
#include <cxxabi.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

namespace {

struct Row {
  uint64_t start, end, graph_node;
  uint32_t stream, correlation, graph, regs, smem;
  int32_t grid[3], block[3];
  std::string name;
};

std::mutex g_mu;
std::vector<Row> g_rows;
std::atomic<uint64_t> g_dropped{0};
constexpr size_t kBufBytes = 8u << 20;

void report(const char* what, CUptiResult r) {
  const char* s = nullptr;
  cuptiGetResultString(r, &s);
  std::fprintf(stderr, "ktrace: %s failed: %s\n", what, s ? s : "unknown CUPTI error");
}

// The demangled name (as written in the source, with its template arguments and parameter list), else as given.
std::string demangle(const char* name) {
  if (!name) return "?";
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  if (status != 0 || !d) return name;
  std::string out(d);
  std::free(d);
  return out;
}

void CUPTIAPI buffer_requested(uint8_t** buf, size_t* size, size_t* max_records) {
  *buf = static_cast<uint8_t*>(std::aligned_alloc(8, kBufBytes));
  *size = *buf ? kBufBytes : 0;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buf, size_t, size_t valid) {
  CUpti_Activity* rec = nullptr;
  std::vector<Row> rows;
  while (cuptiActivityGetNextRecord(buf, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
    Row r;
    r.start = k->start, r.end = k->end, r.graph_node = k->graphNodeId;
    r.stream = k->streamId, r.correlation = k->correlationId, r.graph = k->graphId;
    r.regs = k->registersPerThread, r.smem = uint32_t(k->staticSharedMemory + k->dynamicSharedMemory);
    r.grid[0] = k->gridX, r.grid[1] = k->gridY, r.grid[2] = k->gridZ;
    r.block[0] = k->blockX, r.block[1] = k->blockY, r.block[2] = k->blockZ;
    r.name = demangle(k->name);
    rows.push_back(std::move(r));
  }
  size_t dropped = 0;
  if (cuptiActivityGetNumDroppedRecords(nullptr, 0, &dropped) == CUPTI_SUCCESS) g_dropped += dropped;
  std::free(buf);
  std::lock_guard<std::mutex> lock(g_mu);
  for (auto& r : rows) g_rows.push_back(std::move(r));
}

// A kernel name as one CSV field: commas and quotes would split it, so the field is quoted with "" doubled.
std::string csv_field(const std::string& s) {
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}

void at_exit() {
  cuptiActivityFlushAll(1);
  const char* env = std::getenv("LING_KTRACE_OUT");
  const std::string out = env && *env ? env : "ktrace.csv", tmp = out + ".tmp";
  std::lock_guard<std::mutex> lock(g_mu);
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "ktrace: %s: cannot open for writing\n", tmp.c_str());
    return;
  }
  std::fprintf(f, "start_ns,end_ns,stream,correlation,graph,graph_node,grid,block,regs,smem,name\n");
  for (const Row& r : g_rows)
    std::fprintf(f, "%llu,%llu,%u,%u,%u,%llu,%dx%dx%d,%dx%dx%d,%u,%u,%s\n", (unsigned long long)r.start,
                 (unsigned long long)r.end, r.stream, r.correlation, r.graph, (unsigned long long)r.graph_node,
                 r.grid[0], r.grid[1], r.grid[2], r.block[0], r.block[1], r.block[2], r.regs, r.smem,
                 csv_field(r.name).c_str());
  const bool ok = std::fflush(f) == 0 && !std::ferror(f);
  if (std::fclose(f) != 0 || !ok || std::rename(tmp.c_str(), out.c_str()) != 0) {
    std::fprintf(stderr, "ktrace: %s: write failed\n", out.c_str());
    std::remove(tmp.c_str());
    return;
  }
  std::fprintf(stderr, "ktrace: %zu kernels to %s (%llu records dropped)\n", g_rows.size(), out.c_str(),
               (unsigned long long)g_dropped.load());
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int InitializeInjection(void) {
  CUptiResult r = cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
  if (r != CUPTI_SUCCESS) {
    report("cuptiActivityRegisterCallbacks", r);
    return 0;
  }
  r = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  if (r != CUPTI_SUCCESS) {
    report("cuptiActivityEnable(CONCURRENT_KERNEL)", r);
    return 0;
  }
  std::atexit(at_exit);
  return 1;
}
