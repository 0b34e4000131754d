// Parity of the engine with the PyTorch training code on the two committed trained models (models/*): the
// training script saved fp32 logits of a fixed prompt as parity.safetensors; `ling run --dump` must reproduce
// every element (ling compare's default tolerance: atol 1e-4 + rtol 1e-4).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace {

class TrainedParity : public ::testing::TestWithParam<const char*> {};

TEST_P(TrainedParity, LingRunReproducesTrainingLogits) {
  const std::string model = std::string(LING_SOURCE_DIR) + "/models/" + GetParam();
  const std::string parity = model + "/parity.safetensors";
  ASSERT_TRUE(std::filesystem::exists(parity)) << parity;
  const std::string out = (std::filesystem::temp_directory_path() /
                           (std::string("ling_parity_") + GetParam() + "_" + std::to_string(::getpid()) + ".safetensors"))
                              .string();
  const std::string bin = LING_BINARY;
  const std::string run = bin + " --no-db run " + model + " --prompt-ids " + parity +
                          " --max-new-tokens 1 --temperature 0 --dump " + out + " > /dev/null";
  ASSERT_EQ(std::system(run.c_str()), 0) << run;
  const std::string cmp = bin + " --no-db compare " + out + " " + parity + " --only logits";
  EXPECT_EQ(std::system(cmp.c_str()), 0) << cmp;
  std::filesystem::remove(out);
}

INSTANTIATE_TEST_SUITE_P(Models, TrainedParity, ::testing::Values("ling20-gqa-6m", "ling25-hybrid-6m"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

}  // namespace
