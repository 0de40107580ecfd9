// Tune tables measured on the GPUs fusedmoe was benchmarked on (`fusedmoe tune` over the bench presets'
// shapes), used when FUSEDMOE_TUNE_FILE has no entry for a shape: the role of vLLM's per-device fused_moe
// configs. Regenerate with `fusedmoe tune --preset P --output F` on the card and paste F's entries here;
// bench/results/ holds each table's run. FUSEDMOE_TUNE_BUILTIN=off ignores them (the heuristic decides).
#include "backends/cuda_fused/builtin_tune_tables.hpp"

#include "core/env.hpp"

namespace fusedmoe::cuda_fused {

namespace {

// NVIDIA H100 80GB HBM3, CUDA 13, driver 580, 2026-11-27: buckets up to 256 from session 5
// (bench/results/2026-11-27-h100-session5.md), buckets from 1024 re-tuned in session 6 after the wgmma GEMMs
// got the grouped raster and the persistent tile (bench/results/2026-11-27-h100-session6.md).
// qwen3-30b-a3b, olmoe-1b-7b, mixtral-8x7b, deepseek-v3 at M = 1 .. 16384, CUDA-graph replays, L2 evicted.
// Compute-bound cells move a few percent between runs (clocks under power capping).
constexpr const char* kH100Tables = R"json({
 "entries": [
  {
   "backend": "cuda_fused",
   "buckets": [
    {
     "choice": "m16_n64_k128",
     "max_tokens": 1,
     "time_ms": 0.0379
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 8,
     "time_ms": 0.1845
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 64,
     "time_ms": 0.422
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 256,
     "time_ms": 0.4549
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 1024,
     "time_ms": 0.5076
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 4096,
     "time_ms": 0.8735
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 16384,
     "time_ms": 2.6661
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
     "time_ms": 0.0456
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 8,
     "time_ms": 0.2046
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 64,
     "time_ms": 0.2853
    },
    {
     "choice": "m32",
     "max_tokens": 256,
     "time_ms": 0.3256
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 1024,
     "time_ms": 0.4422
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 4096,
     "time_ms": 0.9319
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 16384,
     "time_ms": 3.2545
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
     "time_ms": 0.2526
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 8,
     "time_ms": 0.8317
    },
    {
     "choice": "m16_n64_k128",
     "max_tokens": 64,
     "time_ms": 0.979
    },
    {
     "choice": "wg128_n256",
     "max_tokens": 256,
     "time_ms": 1.1201
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 1024,
     "time_ms": 1.5688
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 4096,
     "time_ms": 4.7456
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 16384,
     "time_ms": 20.5789
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
     "time_ms": 0.2467
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 8,
     "time_ms": 1.6425
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 64,
     "time_ms": 6.8845
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 256,
     "time_ms": 7.8293
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 1024,
     "time_ms": 8.0035
    },
    {
     "choice": "wg128_n256",
     "max_tokens": 4096,
     "time_ms": 10.1143
    },
    {
     "choice": "wg128_n256_p",
     "max_tokens": 16384,
     "time_ms": 26.6626
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
