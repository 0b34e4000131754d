// The process-wide switch of programmatic dependent launch (launch.h).
#include <atomic>

#include "ling/kernels/launch.h"

namespace ling::kernels {
namespace {
std::atomic<bool> g_pdl{false};
}  // namespace

void set_programmatic_launch(bool on) { g_pdl.store(on, std::memory_order_relaxed); }
bool programmatic_launch() { return g_pdl.load(std::memory_order_relaxed); }

}  // namespace ling::kernels
