// open_engine_model (adapters.h): provisional until lib/engine and the model loader it needs are in the build;
// says so with one clear error.
#include "ling/core/error.h"
#include "ling/eval/adapters.h"

namespace ling::eval {

std::unique_ptr<EngineModel> open_engine_model(const std::string& model_dir, const std::string& backend,
                                               int64_t max_positions) {
  LING_THROW("ling eval: the inference engine is not available in this build yet (model ", model_dir, ")");
}

}  // namespace ling::eval
