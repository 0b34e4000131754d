// Multi-process launch: one process per GPU, started by mpirun, Slurm (srun) or any launcher that sets
// LING_RANK / LING_WORLD_SIZE. Rank, world size and local rank come from the environment (LING_*,
// OMPI_COMM_WORLD_*, SLURM_PROCID/NTASKS/LOCALID, PMI_RANK/PMI_SIZE); the NCCL unique id is exchanged through a
// file on a shared filesystem (LING_RENDEZVOUS, written atomically by rank 0). A rank that fails writes its
// error line to LING_RENDEZVOUS.failed; every other rank polls for it while it waits (rendezvous, communicator
// set-up, collectives) and exits with that error, and no wait lasts longer than LING_NCCL_TIMEOUT seconds
// (default 300): no hang.
#pragma once
#include <string>

namespace ling {

struct LaunchEnv {
  int rank = 0, world = 1, local_rank = 0;
  std::string rendezvous;   // LING_RENDEZVOUS
  double timeout_s = 300;   // LING_NCCL_TIMEOUT
  bool multi() const { return world > 1; }
};

// Throws one line for inconsistent variables (rank outside the world, a world without LING_RENDEZVOUS).
LaunchEnv launch_env_from_environment();

// Record this rank's failure for the others (best effort; no-op outside a multi-process launch).
void report_rank_failure(const LaunchEnv& env, const std::string& message);

}  // namespace ling
