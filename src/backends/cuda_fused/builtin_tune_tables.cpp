// Tune tables measured on the GPUs fusedmoe was benchmarked on (`fusedmoe tune` over the bench presets'
// shapes), used when FUSEDMOE_TUNE_FILE has no entry for a shape: the role of vLLM's per-device fused_moe
// configs. Regenerate with `fusedmoe tune --preset P --output F` on the card and paste F's entries here;
// bench/results/ holds each table's run. FUSEDMOE_TUNE_BUILTIN=off ignores them (the heuristic decides).
#include "backends/cuda_fused/builtin_tune_tables.hpp"

#include "core/env.hpp"

namespace fusedmoe::cuda_fused {

namespace {

// NVIDIA H100 80GB HBM3, CUDA 13, driver 580, 2026-11-27 (session 6, after the warp-specialised tiles;
// buckets 64 .. 4096 from the run that had both; bench/results/2026-11-27-h100-session6.md): qwen3-30b-a3b,
// olmoe-1b-7b, mixtral-8x7b, deepseek-v3 at M = 1 .. 16384, CUDA-graph replays, L2 evicted. Compute-bound
// cells move a few percent between runs (clocks under power capping).
constexpr const char* kH100Tables = R"json({
 "entries": [
  {
   "backend": "cuda_fused",
   "buckets": [
    {
     "choice": "m16_n64_k128",
     "max_tokens": 1,
     "time_ms": 0.0371
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 8,
     "time_ms": 0.1795
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 64,
     "time_ms": 0.4107
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 256,
     "time_ms": 0.4451
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 1024,
     "time_ms": 0.4992
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 4096,
     "time_ms": 0.8256
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 16384,
     "time_ms": 2.5845
    }
   ],
   "device": "NVIDIA H100 80GB HBM3",
   "dtype": "bf16",
   "experts": 128,
   "hidden": 2048,
   "intermediate": 768,
   "top_k": 8
  },
  {
   "backend": "cuda_fused",
   "buckets": [
    {
     "choice": "m16_n64_k128",
     "max_tokens": 1,
     "time_ms": 0.0444
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 8,
     "time_ms": 0.1992
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 64,
     "time_ms": 0.2818
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 256,
     "time_ms": 0.3088
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 1024,
     "time_ms": 0.3987
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 4096,
     "time_ms": 0.9099
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 16384,
     "time_ms": 3.2012
    }
   ],
   "device": "NVIDIA H100 80GB HBM3",
   "dtype": "bf16",
   "experts": 64,
   "hidden": 2048,
   "intermediate": 1024,
   "top_k": 8
  },
  {
   "backend": "cuda_fused",
   "buckets": [
    {
     "choice": "m16_n64_k128",
     "max_tokens": 1,
     "time_ms": 0.2484
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 8,
     "time_ms": 0.8211
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 64,
     "time_ms": 0.9493
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 256,
     "time_ms": 0.9824
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 1024,
     "time_ms": 1.5277
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 4096,
     "time_ms": 4.6251
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 16384,
     "time_ms": 19.2878
    }
   ],
   "device": "NVIDIA H100 80GB HBM3",
   "dtype": "bf16",
   "experts": 8,
   "hidden": 4096,
   "intermediate": 14336,
   "top_k": 2
  },
  {
   "backend": "cuda_fused",
   "buckets": [
    {
     "choice": "m16_n128_k128",
     "max_tokens": 1,
     "time_ms": 0.2441
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 8,
     "time_ms": 1.6106
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 64,
     "time_ms": 6.5139
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 256,
     "time_ms": 7.3888
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 1024,
     "time_ms": 7.7568
    },
    {
     "choice": "wg128_n256",
     "max_tokens": 4096,
     "time_ms": 10.1436
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 16384,
     "time_ms": 22.6537
    }
   ],
   "device": "NVIDIA H100 80GB HBM3",
   "dtype": "bf16",
   "experts": 256,
   "hidden": 7168,
   "intermediate": 2048,
   "top_k": 8
  }
 ],
 "fusedmoe_tune": 1
})json";

}  // namespace

const TuneTable& builtin_tune_tables() {
  static const TuneTable table = TuneTable::parse(kH100Tables, "fusedmoe's built-in tune tables");
  return table;
}

std::optional<TuneEntry> builtin_tune_entry(const TuneKey& key) {
  const bool disabled = env_switch("FUSEDMOE_TUNE_BUILTIN", "on", "off");
  if (disabled) return std::nullopt;
  const TuneEntry* entry = builtin_tune_tables().find(key);
  if (entry == nullptr) return std::nullopt;
  return *entry;
}

}  // namespace fusedmoe::cuda_fused
