// FusedMoeLayer: the one object users hold. Config + canonical weights + the kernel the oracle chose.
//
//   fusedmoe::FusedMoeLayer layer(config);
//   layer.set_weights(std::move(weights));   // canonical layout (see weights.hpp)
//   layer.finalize_weights();                // oracle selection + one-time weight conversion
//   layer.forward(hidden, out);              // router logits from the layer's gate weight
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fusedmoe/communicator.hpp"
#include "fusedmoe/config.hpp"
#include "fusedmoe/kernel.hpp"
#include "fusedmoe/oracle.hpp"
#include "fusedmoe/tensor.hpp"
#include "fusedmoe/weights.hpp"

namespace fusedmoe {

struct LayerOptions {
  std::optional<std::string> backend;  // force a backend id (else FUSEDMOE_BACKEND, else the oracle)
  std::optional<std::string> shared_experts_backend;  // the same, for the shared experts
  std::int64_t max_chunk_tokens = 8192;               // see MoeKernelOptions
  // Expert parallelism (parallel.dispatch allgather / all2all): the ep_size ranks. finalize_weights()
  // checks that every rank has the same configuration, failing on every rank when they differ.
  std::shared_ptr<Communicator> communicator;

  // Options that force one backend id (the rest default).
  static LayerOptions with_backend(std::optional<std::string> id) {
    LayerOptions options;
    options.backend = std::move(id);
    return options;
  }
};

// Optional extra outputs of forward().
struct RoutingOutputs {
  TensorView topk_ids;      // [M, k] int32
  TensorView topk_weights;  // [M, k] fp32
};

class FusedMoeLayer {
 public:
  explicit FusedMoeLayer(MoeConfig config, LayerOptions options = {});
  ~FusedMoeLayer();
  FusedMoeLayer(FusedMoeLayer&&) noexcept;
  FusedMoeLayer& operator=(FusedMoeLayer&&) noexcept;

  // Checks every tensor's shape, dtype and device against the config; throws InvalidArgument.
  // With expert parallelism, w13 and w2 hold this rank's experts only (see local_expert_ids()).
  void set_weights(MoeWeights weights);
  // The global ids of the experts this rank holds, in local order (all of them without parallelism).
  std::vector<std::int32_t> local_expert_ids() const;
  // Selects the backend(s) and converts the weights once. Required before forward().
  void finalize_weights(const Platform& platform);
  void finalize_weights();  // on Platform::detect(config.device)
  bool finalized() const;

  // hidden [M, H] and out [M, H] in act_dtype; router_logits [M, E] (fp32, bf16 or fp16).
  void forward(const TensorView& hidden, const TensorView& router_logits, const TensorView& out,
               const ExecContext& context = {}, const RoutingOutputs& routing = {});
  // Router logits computed from the layer's router_gate weight (fp32 accumulation).
  void forward(const TensorView& hidden, const TensorView& out, const ExecContext& context = {},
               const RoutingOutputs& routing = {});
  // hidden [M, H] -> logits [M, E] fp32 with the router gate weight.
  void compute_router_logits(const TensorView& hidden, const TensorView& logits,
                             const ExecContext& context = {}) const;
  // Sizes workspaces for up to `num_tokens` tokens so forward allocates nothing.
  void reserve(std::int64_t num_tokens);

  const MoeConfig& config() const;
  const MoeWeights& weights() const;
  // Throws InvalidArgument before finalize_weights().
  const Selection& selection() const;
  const Selection* shared_experts_selection() const;  // nullptr without shared experts

 private:
  struct State;
  // The state; throws InvalidArgument on a moved-from layer.
  State& state();
  const State& state() const;
  std::unique_ptr<State> state_;
};

}  // namespace fusedmoe
