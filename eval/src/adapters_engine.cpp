// open_engine_model (adapters.h): ling::Engine behind LogitsSource (one sequence, for ppl/kld and single
// generation) and BatchedLogits (independent sequences decoded together in one forward call).
#include <memory>
#include <vector>

#include "ling/core/build_info.h"
#include "ling/core/error.h"
#include "ling/engine/engine.h"
#include "ling/eval/adapters.h"

namespace ling::eval {
namespace {

class EngineAdapter : public EngineModel {
 public:
  EngineAdapter(std::unique_ptr<Engine> eng, int64_t max_positions)
      : eng_(std::move(eng)), max_positions_(max_positions) {}

  int vocab_size() const override { return static_cast<int>(eng_->config().vocab_size); }
  int64_t max_positions() const override { return eng_->config().max_position_embeddings; }
  std::string device() const override { return eng_->backend().name(); }

  void reset() override { seq_ = eng_->new_sequence(); }
  void append(std::span<const int32_t> tokens, bool all_rows, std::vector<float>& logits) override {
    if (!seq_) reset();
    logits = eng_->forward({seq_.get()}, {std::vector<int32_t>(tokens.begin(), tokens.end())}, all_rows);
  }

  int max_batch() const override { return 16; }
  int open_slot() override {
    for (size_t i = 0; i < slots_.size(); ++i)
      if (!slots_[i]) {
        slots_[i] = eng_->new_sequence();
        return static_cast<int>(i);
      }
    slots_.push_back(eng_->new_sequence());
    return static_cast<int>(slots_.size()) - 1;
  }
  void close_slot(int slot) override {
    if (slot >= 0 && static_cast<size_t>(slot) < slots_.size()) slots_[size_t(slot)].reset();
  }
  void append(const std::vector<int>& slots, const std::vector<std::vector<int32_t>>& tokens,
              std::vector<float>& last_rows) override {
    std::vector<Sequence*> seqs;
    for (int s : slots) {
      LING_CHECK(s >= 0 && static_cast<size_t>(s) < slots_.size() && slots_[size_t(s)],
                 "internal error: engine slot ", s, " is not open");
      seqs.push_back(slots_[size_t(s)].get());
    }
    last_rows = eng_->forward(seqs, tokens, false);
  }

 private:
  std::unique_ptr<Engine> eng_;
  int64_t max_positions_;
  std::unique_ptr<Sequence> seq_;
  std::vector<std::unique_ptr<Sequence>> slots_;
};

}  // namespace

std::unique_ptr<EngineModel> open_engine_model(const std::string& model_dir, const std::string& backend,
                                               int64_t max_positions, int64_t tp, int64_t ep) {
  EngineOptions opt;
  opt.backend = backend;
  opt.tp = tp;
  opt.ep = ep;
  auto eng = Engine::open(model_dir, opt);
  LING_CHECK(max_positions <= 0 || max_positions <= eng->config().max_position_embeddings, "ling eval: ", max_positions,
             " positions needed but ", model_dir, " supports ", eng->config().max_position_embeddings,
             " (max_position_embeddings); use shorter --contexts / --ctx");
  return std::make_unique<EngineAdapter>(std::move(eng), max_positions);
}

}  // namespace ling::eval
