// MoeKernel composition rules, argument checks, M = 0 and workspace sizing.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "parallel/prepare_finalize_local.hpp"
#include "testing/moe_case.hpp"

namespace fusedmoe {
namespace {

std::unique_ptr<Experts> experts_of(std::string_view id, const MoeConfig& config) {
  return find_backend(id)->make_experts(config);
}

template <class Call>
void expect_error(Call&& call, const std::string& fragment) {
  try {
    call();
    ADD_FAILURE() << "no exception; expected one mentioning '" << fragment << "'";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

TEST(MoeKernel, RejectsMismatchedPairs) {
  const MoeConfig config = testing::make_config(8, 2, 32, 16);
  expect_error(
      [&] {
        MoeKernel(config, std::make_unique<LocalPrepareFinalize>(),
                  experts_of("cpu_reference_batched", config));
      },
      "format");
  expect_error(
      [&] {
        MoeKernel(config, std::make_unique<LocalBatchedPrepareFinalize>(config),
                  experts_of("cpu_reference", config));
      },
      "format");
  expect_error(
      [&] {
        MoeKernel(config, std::make_unique<LocalPrepareFinalize>(),
                  experts_of("cpu_reference_monolithic", config));
      },
      "kinds must match");
  expect_error(
      [&] {
        MoeKernel(config, std::make_unique<LocalMonolithicPrepareFinalize>(),
                  experts_of("cpu_reference", config));
      },
      "kinds must match");
  expect_error([&] { MoeKernel(config, nullptr, experts_of("cpu_reference", config)); }, "null");
  // Matching pairs compose.
  EXPECT_NO_THROW(
      MoeKernel(config, std::make_unique<LocalPrepareFinalize>(), experts_of("cpu_reference", config)));
  EXPECT_NO_THROW(MoeKernel(config, std::make_unique<LocalBatchedPrepareFinalize>(config),
                            experts_of("cpu_reference_batched", config)));
}

TEST(MoeKernel, ForwardChecksShapesDtypesAndIds) {
  const MoeConfig config = testing::make_config(8, 2, 32, 16);
  const MoeWeights weights = random_weights(config, 1);
  testing::BuiltKernel built = testing::build_kernel(*find_backend("cpu_reference"), config, weights);
  const Tensor hidden = random_hidden(config, 4, 2);
  const Tensor out = Tensor::empty(DType::bf16, {4, 32});
  const Tensor ids = Tensor::zeros(DType::int32, {4, 2});
  const Tensor topk_weights = Tensor::zeros(DType::fp32, {4, 2});
  MoeKernel& kernel = *built.kernel;
  const ExpertWeights& w = *built.weights;
  expect_error(
      [&] {
        kernel.forward(Tensor::empty(DType::fp32, {4, 32}), ids, topk_weights, {}, w, out);
      },
      "hidden dtype");
  expect_error(
      [&] {
        kernel.forward(Tensor::empty(DType::bf16, {4, 31}), ids, topk_weights, {}, w, out);
      },
      "hidden shape");
  expect_error(
      [&] {
        kernel.forward(hidden, Tensor::zeros(DType::int32, {4, 3}), topk_weights, {}, w, out);
      },
      "topk_ids shape");
  expect_error(
      [&] {
        kernel.forward(hidden, ids, topk_weights, {}, w, Tensor::empty(DType::bf16, {5, 32}));
      },
      "out shape");
  Tensor bad_ids = Tensor::zeros(DType::int32, {4, 2});
  bad_ids.data_as<std::int32_t>()[5] = 8;
  expect_error([&] { kernel.forward(hidden, bad_ids, topk_weights, {}, w, out); }, "topk_ids[2, 1] = 8");
  bad_ids.data_as<std::int32_t>()[5] = -1;
  expect_error([&] { kernel.forward(hidden, bad_ids, topk_weights, {}, w, out); }, "= -1");
  Tensor bad_map = Tensor::zeros(DType::int32, {8});
  bad_map.data_as<std::int32_t>()[3] = 9;
  expect_error([&] { kernel.forward(hidden, ids, topk_weights, bad_map, w, out); }, "expert_map[3] = 9");
  expect_error(
      [&] {
        kernel.forward_monolithic(hidden, Tensor::zeros(DType::fp32, {4, 8}), {}, w, out);
      },
      "needs monolithic Experts");
}

TEST(MoeKernel, ZeroTokensIsValid) {
  for (const char* id : {"cpu_reference", "cpu_reference_batched"}) {
    MoeConfig config = testing::make_config(8, 2, 32, 16);
    if (std::string_view(id) == "cpu_reference_batched")
      config.parallel.dispatch = DispatchMode::local_batched;
    const MoeWeights weights = random_weights(config, 1);
    testing::BuiltKernel built = testing::build_kernel(*find_backend(id), config, weights);
    const Tensor hidden = Tensor::empty(DType::bf16, {0, 32});
    const Tensor out = Tensor::empty(DType::bf16, {0, 32});
    EXPECT_NO_THROW(built.kernel->forward(hidden, Tensor::empty(DType::int32, {0, 2}),
                                          Tensor::empty(DType::fp32, {0, 2}), {}, *built.weights, out));
  }
}

TEST(MoeKernel, WorkspaceIsSizedUpFrontAndBoundedByTheChunk) {
  const MoeConfig config = testing::make_config(8, 2, 32, 16);
  const MoeWeights weights = random_weights(config, 1);
  testing::BuiltKernel small = testing::build_kernel(*find_backend("cpu_reference"), config, weights, 64);
  EXPECT_EQ(small.kernel->workspace_bytes(10'000), small.kernel->workspace_bytes(64));
  EXPECT_GE(small.kernel->workspace_bytes(64), small.kernel->workspace_bytes(1));
  MoeConfig batched = config;
  batched.parallel.dispatch = DispatchMode::local_batched;
  batched.parallel.batched_capacity = 16;
  testing::BuiltKernel b = testing::build_kernel(*find_backend("cpu_reference_batched"), batched, weights, 0);
  EXPECT_EQ(b.kernel->workspace_bytes(1'000'000), b.kernel->workspace_bytes(16))
      << "the batched format must chunk at its capacity";
}

TEST(MoeKernel, BatchedFormatRejectsAnExpertTwiceInOneRow) {
  MoeConfig config = testing::make_config(8, 2, 32, 16);
  config.parallel.dispatch = DispatchMode::local_batched;
  const MoeWeights weights = random_weights(config, 1);
  testing::BuiltKernel built = testing::build_kernel(*find_backend("cpu_reference_batched"), config, weights);
  const Tensor hidden = random_hidden(config, 1, 2);
  const Tensor out = Tensor::empty(DType::bf16, {1, 32});
  const Tensor ids = Tensor::zeros(DType::int32, {1, 2});  // expert 0 twice
  expect_error(
      [&] {
        built.kernel->forward(hidden, ids, Tensor::zeros(DType::fp32, {1, 2}), {}, *built.weights, out);
      },
      "more than once");
  // The message names the token that repeats the expert, whether or not a later token fills its slab, and
  // a repeat is refused even where the slab has room (3 tokens: capacity 3).
  const Tensor hidden3 = random_hidden(config, 3, 2);
  const Tensor out3 = Tensor::empty(DType::bf16, {3, 32});
  for (const std::vector<std::int32_t>& rows :
       {std::vector<std::int32_t>{0, 1, 2, 2, 2, 3}, std::vector<std::int32_t>{0, 1, 2, 2, 4, 5}}) {
    Tensor ids3 = Tensor::empty(DType::int32, {3, 2});
    std::copy(rows.begin(), rows.end(), ids3.data_as<std::int32_t>());
    expect_error(
        [&] {
          built.kernel->forward(hidden3, ids3, Tensor::zeros(DType::fp32, {3, 2}), {}, *built.weights, out3);
        },
        "token 1 lists expert 2 more than once");
  }
}

}  // namespace
}  // namespace fusedmoe
