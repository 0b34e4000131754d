// Multi-process launch environment and failure reporting (launch.h).
#include "ling/engine/launch.h"

#include <cstdlib>
#include <fstream>

#include "ling/core/error.h"
#include "ling/core/fs.h"

namespace ling {

namespace {

const char* first_env(std::initializer_list<const char*> names, const char** which) {
  for (const char* n : names)
    if (const char* v = std::getenv(n); v && *v) {
      if (which) *which = n;
      return v;
    }
  return nullptr;
}

int parse_int(const char* name, const char* v) {
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  LING_CHECK(end && *end == '\0' && x >= 0 && x < (1 << 20), name, "='", v, "' is not a non-negative integer");
  return int(x);
}

}  // namespace

LaunchEnv launch_env_from_environment() {
  LaunchEnv e;
  const char *rn = nullptr, *wn = nullptr, *ln = nullptr;
  const char* r = first_env({"LING_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID", "PMI_RANK"}, &rn);
  const char* w = first_env({"LING_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS", "PMI_SIZE"}, &wn);
  const char* l = first_env({"LING_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"}, &ln);
  if (!w) return e;
  e.world = parse_int(wn, w);
  if (e.world <= 1) return LaunchEnv{};
  LING_CHECK(r, wn, " is ", e.world, " but no rank variable (LING_RANK, OMPI_COMM_WORLD_RANK, SLURM_PROCID) is set");
  e.rank = parse_int(rn, r);
  LING_CHECK(e.rank < e.world, rn, "=", e.rank, " is outside the world of ", e.world);
  e.local_rank = l ? parse_int(ln, l) : e.rank;
  const char* rv = std::getenv("LING_RENDEZVOUS");
  LING_CHECK(rv && *rv, "a ", e.world, "-process launch needs LING_RENDEZVOUS (a file path on a filesystem every "
             "rank sees) for the NCCL id exchange");
  e.rendezvous = rv;
  if (const char* t = std::getenv("LING_NCCL_TIMEOUT"); t && *t) {
    char* end = nullptr;
    e.timeout_s = std::strtod(t, &end);
    LING_CHECK(end && *end == '\0' && e.timeout_s > 0, "LING_NCCL_TIMEOUT='", t, "' is not a positive number of seconds");
  }
  return e;
}

void report_rank_failure(const LaunchEnv& env, const std::string& message) {
  if (!env.multi() || env.rendezvous.empty()) return;
  try {
    write_file_atomic(env.rendezvous + ".failed", "rank " + std::to_string(env.rank) + ": " + message + "\n");
  } catch (...) {
  }
}

}  // namespace ling
