// The CUDA backend's switches: environment variables read once when a backend starts (unset or empty: the
// switch's default; "0": off; any other value: on). One list: the backend reads it, `ling bench --backend cuda`
// prints and stores the switches that differ from their defaults, and a test holds README's table of switches to
// it (names and defaults). Plain C++: no CUDA header, so that the list builds and is tested everywhere.
#pragma once
#include <string>
#include <vector>

namespace ling {

struct CudaSwitches {
  // Launch and debugging
  bool pdl = true;             // LING_CUDA_PDL: programmatic dependent launch of the decode-path kernels
  bool sync = false;           // LING_CUDA_SYNC: synchronise after every launch
  bool profile = false;        // LING_CUDA_PROFILE: per-op device times at exit (graphs off)
  // Placement of decode-step work (each alternative keeps the arithmetic or has its own tests)
  bool mla_paged = true;       // LING_CUDA_MLA_PAGED
  bool mla_tma = true;         // LING_CUDA_MLA_TMA
  bool lightning_fold = true;  // LING_CUDA_LIGHTNING_FOLD
  bool early_shared = true;    // LING_CUDA_EARLY_SHARED
  bool gemv_raw = true;        // LING_CUDA_GEMV_RAW
  bool gqa_wide = true;        // LING_CUDA_GQA_WIDE
  bool fold_cluster = true;    // LING_CUDA_FOLD_CLUSTER
  bool router_bf16 = true;     // LING_CUDA_ROUTER_BF16
  bool router_head = false;    // LING_CUDA_ROUTER_HEAD
  bool state_early = false;    // LING_CUDA_STATE_EARLY
  bool gate_up_lean = false;   // LING_CUDA_GATE_UP_LEAN
  bool gate_up_l2 = false;     // LING_CUDA_GATE_UP_L2
  bool lightning_late = false; // LING_CUDA_LIGHTNING_LATE
  bool router_late = false;    // LING_CUDA_ROUTER_LATE
  bool norm_late = false;      // LING_CUDA_NORM_LATE
  bool moe_fused = false;      // LING_CUDA_MOE_FUSED
  bool moe_l2 = false;         // LING_CUDA_MOE_L2
  bool moe_stamps = false;     // LING_CUDA_MOE_STAMPS
  bool l2pf = false;           // LING_CUDA_L2PF
};

struct CudaSwitch {
  const char* env;              // e.g. "LING_CUDA_PDL"
  bool CudaSwitches::*member;   // its field; the default is CudaSwitches{}.*member
};
// Every switch, in the order of the struct.
const std::vector<CudaSwitch>& cuda_switch_table();
// The switches as the environment sets them.
CudaSwitches cuda_switches_from_env();
// "LING_CUDA_X=1 LING_CUDA_Y=0" for the switches whose value differs from the default, in table order ("" if none).
std::string cuda_switches_changed(const CudaSwitches& s);

}  // namespace ling
