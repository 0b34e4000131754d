// Embedding lookup and the SwiGLU activation (architecture.md §2.1, §2.3). Params are core/op_params.h's, the
// ones ref::embed and ref::swiglu take; pointers are device pointers. Exact: the same fp32 operations.
#pragma once
#include <cuda_runtime_api.h>

#include "ling/core/op_params.h"

namespace ling::kernels {

void launch_embed(const EmbedParams& p, cudaStream_t stream);
// out must not alias gu (threads of other rows read gu concurrently).
void launch_swiglu(const SwigluParams& p, cudaStream_t stream);

}  // namespace ling::kernels
