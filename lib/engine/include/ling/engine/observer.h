// Observer: receives named intermediates of a forward pass (house-style.md §3.4). Names are fixed:
//   blk.{il}.attn_in [n, H]   blk.{il}.attn_out [n, H]   blk.{il}.ffn_out [n, H]   blk.{il}.out [n, H]
//   blk.{il}.moe.topk_ids [n, k] (i64, descending selection score)   blk.{il}.moe.topk_weights [n, k]
//   final_norm [n, H]   logits [rows, V]
// n is the number of packed token rows of the call (sequences in call order, tokens in order). Consumers:
// `ling run --dump`, golden tests, calibration. Data pointers are valid only during the callback.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ling {

class Observer {
 public:
  virtual ~Observer() = default;
  // Return false to skip a tensor (saves the copy from a device backend).
  virtual bool wants(const std::string& name) const { (void)name; return true; }
  virtual void on_f32(const std::string& name, const std::vector<int64_t>& shape, const float* data) = 0;
  virtual void on_i64(const std::string& name, const std::vector<int64_t>& shape, const int64_t* data) = 0;
};

}  // namespace ling
