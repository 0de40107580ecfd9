// The modular kernel: PrepareFinalize (dispatch tokens to their experts, combine results back)
// composed with Experts (the expert GEMMs). See src/kernel/README.md for why the split is there.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>

#include "fusedmoe/config.hpp"
#include "fusedmoe/tensor.hpp"
#include "fusedmoe/weights.hpp"

namespace fusedmoe {

// standard: tokens as rows [M', H]; batched: one slab per local expert [E_local, capacity, H]
// whose first expert_num_tokens[e] rows are valid.
enum class ActivationFormat { standard, batched };
// by_experts: the Experts apply the top-k weights and sum over k themselves;
// by_finalize: they return unweighted per-(token, k) rows and the finalize step weights and sums.
enum class WeightAndReduce { by_experts, by_finalize };
enum class ExpertsKind { modular, monolithic };

std::string_view to_string(ActivationFormat format);
std::string_view to_string(WeightAndReduce policy);
std::string_view to_string(ExpertsKind kind);

// Sizes the Experts need to plan a call; reported by PrepareFinalize for a given M.
struct ExpertsProblem {
  ActivationFormat format = ActivationFormat::standard;
  std::int64_t num_tokens = 0;  // standard: rows M' dispatched here; batched: capacity per expert
  std::int64_t num_local_experts = 0;
  std::int64_t num_experts = 0;  // global
  int top_k = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
};

// The standard-format problem of `rows` dispatched tokens under a config (what most PrepareFinalize report).
ExpertsProblem standard_problem(std::int64_t rows, const MoeConfig& config);

// What prepare() hands to the Experts.
struct DispatchedTokens {
  ActivationFormat format = ActivationFormat::standard;
  TensorView hidden;             // standard: [M', H]; batched: [E_local, capacity, H]
  TensorView topk_ids;           // standard: [M', k] int32, global ids; batched: undefined
  TensorView topk_weights;       // standard: [M', k] fp32; batched: [E_local, capacity] fp32 per slot
  TensorView expert_num_tokens;  // batched: [E_local] int32; standard: undefined
  TensorView slot_token;         // batched: [E_local, capacity] int32 source row of each slot
  TensorView
      expert_map;  // [E] int32 global -> local id, -1 = not on this rank; undefined = identity (one rank)
};

// A bump allocator over caller-provided memory: hands out aligned, typed views, never allocates.
class WorkspaceArena {
 public:
  WorkspaceArena() = default;
  WorkspaceArena(void* base, std::size_t bytes, Device device)
      : base_(base), bytes_(bytes), device_(device) {}
  // Bytes to reserve for a block of `count` elements of `dtype` (includes alignment padding).
  static std::size_t bytes_for(DType dtype, std::int64_t count);
  TensorView take(DType dtype, std::span<const std::int64_t> shape);
  TensorView take(DType dtype, std::initializer_list<std::int64_t> shape) {
    return take(dtype, std::span<const std::int64_t>(shape.begin(), shape.size()));
  }
  std::size_t used() const { return used_; }
  std::size_t capacity() const { return bytes_; }

 private:
  void* base_ = nullptr;
  std::size_t bytes_ = 0;
  std::size_t used_ = 0;
  Device device_{};
};

// ---- PrepareFinalize -----------------------------------------------------------------------
// Dispatch and combine live in one object because their communication must match.
class PrepareFinalize {
 public:
  virtual ~PrepareFinalize() = default;
  virtual std::string_view name() const = 0;
  virtual ExpertsKind kind() const = 0;
  // Activation format delivered to the Experts.
  virtual ActivationFormat format() const = 0;
};

class PrepareFinalizeModular : public PrepareFinalize {
 public:
  ExpertsKind kind() const final { return ExpertsKind::modular; }
  // What the Experts will see for a chunk of `num_tokens` local tokens.
  virtual ExpertsProblem problem(std::int64_t num_tokens, const MoeConfig& config) const = 0;
  // Workspace bytes prepare + finalize need for `num_tokens` local tokens.
  virtual std::size_t workspace_bytes(std::int64_t num_tokens, const MoeConfig& config) const = 0;
  // True when an Experts of policy by_experts may write straight into the final output.
  virtual bool experts_write_output_directly() const { return false; }
  // Most tokens one prepare() accepts (the kernel chunks larger M); 0 = no limit.
  virtual std::int64_t max_tokens_per_call() const { return 0; }
  // Expert-parallel dispatch: the largest token count over all ranks, so that every rank runs the same
  // number of chunks (and collectives), ranks with fewer tokens running empty chunks. Local: `local`.
  // `context`: the call's stream (a dispatch that can be captured in a CUDA graph answers without host
  // communication while the stream is capturing).
  virtual std::int64_t agree_num_tokens(std::int64_t local, const ExecContext& context) {
    (void)context;
    return local;
  }
  // hidden [M, H], topk_ids [M, k] int32, topk_weights [M, k] fp32.
  virtual DispatchedTokens prepare(const TensorView& hidden, const TensorView& topk_ids,
                                   const TensorView& topk_weights, const TensorView& expert_map,
                                   WorkspaceArena& workspace, const ExecContext& context) = 0;
  // expert_out: what the Experts wrote (see ExpertsModular::output_shape); out: [M, H].
  virtual void finalize(const DispatchedTokens& dispatched, const TensorView& expert_out,
                        WeightAndReduce policy, const TensorView& out, WorkspaceArena& workspace,
                        const ExecContext& context) = 0;
};

// Paired with monolithic Experts: moves hidden states and router logits, not top-k ids.
class PrepareFinalizeMonolithic : public PrepareFinalize {
 public:
  ExpertsKind kind() const final { return ExpertsKind::monolithic; }
  ActivationFormat format() const override { return ActivationFormat::standard; }
  virtual std::size_t workspace_bytes(std::int64_t num_tokens, const MoeConfig& config) const = 0;
  struct Prepared {
    TensorView hidden;         // [M', H]
    TensorView router_logits;  // [M', E]
  };
  virtual Prepared prepare(const TensorView& hidden, const TensorView& router_logits,
                           WorkspaceArena& workspace, const ExecContext& context) = 0;
  // True when the Experts may write straight into the final output.
  virtual bool experts_write_output_directly() const { return true; }
  virtual void finalize(const TensorView& expert_out, const TensorView& out, const ExecContext& context) = 0;
};

// ---- Experts -----------------------------------------------------------------------------------
class Experts {
 public:
  virtual ~Experts() = default;
  virtual std::string_view name() const = 0;  // the backend id
  virtual ExpertsKind kind() const = 0;
};

class ExpertsModular : public Experts {
 public:
  ExpertsKind kind() const final { return ExpertsKind::modular; }
  virtual ActivationFormat format() const = 0;
  virtual WeightAndReduce weight_and_reduce() const = 0;
  // Scratch bytes apply() needs for this problem (0 is fine). Queried once per size, before apply.
  virtual std::size_t workspace_bytes(const ExpertsProblem& problem) const = 0;
  // Computes expert outputs into expert_out, whose shape follows from format and policy:
  //   standard + by_experts  : [M', H]        weighted and summed over k; non-local ids contribute 0
  //   standard + by_finalize : [M', k, H]     unweighted; rows of non-local ids are 0
  //   batched  + by_finalize : [E_local, capacity, H] unweighted; rows past the count are unspecified
  virtual void apply(const DispatchedTokens& dispatched, const ExpertWeights& weights,
                     const TensorView& expert_out, WorkspaceArena& workspace, const ExecContext& context) = 0;
};

class ExpertsMonolithic : public Experts {
 public:
  ExpertsKind kind() const final { return ExpertsKind::monolithic; }
  virtual std::size_t workspace_bytes(std::int64_t num_tokens) const = 0;
  // Routes (with the layer's routing config and correction bias) and computes out [M, H].
  virtual void apply(const TensorView& hidden, const TensorView& router_logits,
                     const TensorView& correction_bias, const ExpertWeights& weights, const TensorView& out,
                     WorkspaceArena& workspace, const ExecContext& context) = 0;
};

// ---- MoeKernel ---------------------------------------------------------------------------------
struct MoeKernelOptions {
  // Tokens per chunk: larger M is processed chunk by chunk (identical results), bounding the
  // workspace. 0 = no chunking.
  std::int64_t max_chunk_tokens = 8192;
};

// Composes a PrepareFinalize with an Experts of the same kind and format, and runs them.
class MoeKernel {
 public:
  // Throws InvalidArgument when the pair does not match (kind, format, or a batched Experts
  // that wants to reduce by itself).
  MoeKernel(MoeConfig config, std::unique_ptr<PrepareFinalize> prepare_finalize,
            std::unique_ptr<Experts> experts, MoeKernelOptions options = {});
  ~MoeKernel();
  MoeKernel(MoeKernel&&) noexcept;
  MoeKernel& operator=(MoeKernel&&) noexcept;

  ExpertsKind kind() const;
  const PrepareFinalize& prepare_finalize() const { return *prepare_finalize_; }
  const Experts& experts() const { return *experts_; }
  const MoeConfig& config() const { return config_; }

  // Bytes of workspace a call with `num_tokens` tokens needs.
  std::size_t workspace_bytes(std::int64_t num_tokens) const;
  // Sizes the internal workspace for up to `num_tokens` tokens now, so that forward allocates nothing.
  void reserve(std::int64_t num_tokens);

  // Modular kernels: hidden [M, H], topk_ids [M, k] int32, topk_weights [M, k] fp32, out [M, H].
  // expert_map: [E] int32 (the placement's, required with expert parallelism) or undefined (one rank).
  void forward(const TensorView& hidden, const TensorView& topk_ids, const TensorView& topk_weights,
               const TensorView& expert_map, const ExpertWeights& weights, const TensorView& out,
               const ExecContext& context = {});
  // Expert-parallel: this rank cannot run this forward (a check before forward() failed, e.g. in a layer):
  // offers the "invalid inputs" mark in the token agreement, so that the other ranks' forward() stops with an
  // error instead of waiting for this rank, then rethrows `error`. Without expert parallelism it only
  // rethrows.
  [[noreturn]] void abandon_forward(std::exception_ptr error, const ExecContext& context = {});
  // Monolithic kernels: routes inside.
  void forward_monolithic(const TensorView& hidden, const TensorView& router_logits,
                          const TensorView& correction_bias, const ExpertWeights& weights,
                          const TensorView& out, const ExecContext& context = {});

 private:
  struct Buffers;
  WorkspaceArena arena_for(std::int64_t num_tokens);
  // Shapes, dtypes, devices and (on the CPU) the ids and the expert map of a modular forward.
  void check_forward_inputs(const TensorView& hidden, const TensorView& topk_ids,
                            const TensorView& topk_weights, const TensorView& expert_map,
                            const TensorView& out) const;
  void forward_chunk(const TensorView& hidden, const TensorView& topk_ids, const TensorView& topk_weights,
                     const TensorView& expert_map, const ExpertWeights& weights, const TensorView& out,
                     const ExecContext& context);

  MoeConfig config_;
  std::unique_ptr<PrepareFinalize> prepare_finalize_;
  std::unique_ptr<Experts> experts_;
  MoeKernelOptions options_;
  Tensor workspace_;      // grown by reserve(); never inside a chunk
  Tensor placement_map_;  // expert-parallel: [E] int32 (CPU), the expert map the placement implies
};

class Communicator;
// The PrepareFinalize the parallel configuration calls for (the only place that decides it).
// Expert-parallel modes need the communicator of the ep_size ranks.
std::unique_ptr<PrepareFinalizeModular> make_prepare_finalize(
    const MoeConfig& config, std::shared_ptr<Communicator> communicator = nullptr);
std::unique_ptr<PrepareFinalizeMonolithic> make_prepare_finalize_monolithic(const MoeConfig& config);
// The activation format make_prepare_finalize(config) delivers.
ActivationFormat dispatch_format(const MoeConfig& config);

}  // namespace fusedmoe
