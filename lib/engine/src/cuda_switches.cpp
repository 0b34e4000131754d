// The CUDA backend's switch list (cuda_switches.h).
#include "ling/engine/cuda_switches.h"

#include <cstdlib>

namespace ling {

const std::vector<CudaSwitch>& cuda_switch_table() {
  using S = CudaSwitches;
  static const std::vector<CudaSwitch> table = {
      {"LING_CUDA_PDL", &S::pdl},
      {"LING_CUDA_SYNC", &S::sync},
      {"LING_CUDA_PROFILE", &S::profile},
      {"LING_CUDA_MLA_PAGED", &S::mla_paged},
      {"LING_CUDA_MLA_TMA", &S::mla_tma},
      {"LING_CUDA_LIGHTNING_FOLD", &S::lightning_fold},
      {"LING_CUDA_EARLY_SHARED", &S::early_shared},
      {"LING_CUDA_GEMV_RAW", &S::gemv_raw},
      {"LING_CUDA_GQA_WIDE", &S::gqa_wide},
      {"LING_CUDA_FOLD_CLUSTER", &S::fold_cluster},
      {"LING_CUDA_ROUTER_BF16", &S::router_bf16},
      {"LING_CUDA_ROUTER_HEAD", &S::router_head},
      {"LING_CUDA_STATE_EARLY", &S::state_early},
      {"LING_CUDA_GATE_UP_LEAN", &S::gate_up_lean},
      {"LING_CUDA_GATE_UP_L2", &S::gate_up_l2},
      {"LING_CUDA_LIGHTNING_LATE", &S::lightning_late},
      {"LING_CUDA_ROUTER_LATE", &S::router_late},
      {"LING_CUDA_NORM_LATE", &S::norm_late},
      {"LING_CUDA_MOE_FUSED", &S::moe_fused},
      {"LING_CUDA_MOE_L2", &S::moe_l2},
      {"LING_CUDA_MOE_STAMPS", &S::moe_stamps},
      {"LING_CUDA_L2PF", &S::l2pf},
  };
  return table;
}

CudaSwitches cuda_switches_from_env() {
  CudaSwitches s;
  for (const CudaSwitch& w : cuda_switch_table()) {
    const char* v = std::getenv(w.env);
    if (v && *v) s.*w.member = std::string(v) != "0";
  }
  return s;
}

std::string cuda_switches_changed(const CudaSwitches& s) {
  const CudaSwitches d;
  std::string out;
  for (const CudaSwitch& w : cuda_switch_table()) {
    if (s.*w.member == d.*w.member) continue;
    if (!out.empty()) out.push_back(' ');
    out.append(w.env).append(s.*w.member ? "=1" : "=0");
  }
  return out;
}

}  // namespace ling
