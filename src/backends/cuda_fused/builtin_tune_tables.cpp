// Tune tables measured on the GPUs fusedmoe was benchmarked on (`fusedmoe tune` over the bench presets'
// shapes), used when FUSEDMOE_TUNE_FILE has no entry for a shape: the role of vLLM's per-device fused_moe
// configs. Regenerate with `fusedmoe tune --preset P --output F` on the card and paste F's entries here;
// bench/results/ holds each table's run. FUSEDMOE_TUNE_BUILTIN=off ignores them (the heuristic decides).
#include "backends/cuda_fused/builtin_tune_tables.hpp"

#include "core/env.hpp"

namespace fusedmoe::cuda_fused {

namespace {

// NVIDIA H100 80GB HBM3, CUDA 13, driver 580, 2026-11-27 (session 7: weights in k-panels, the GEMM1 -> GEMM2
// hand-over, wg64_n128_ws; bench/results/2026-11-27-h100-session7.md): qwen3-30b-a3b, olmoe-1b-7b,
// mixtral-8x7b, deepseek-v3 at M = 1 .. 16384, CUDA-graph replays, L2 evicted, median of 10. Neighbouring
// tiles are often within 0.5% (run-to-run noise), and compute-bound cells move a few percent between runs
// (clocks under power capping). Session 8 re-tuned M = 4096 and 16384 of mixtral-8x7b and deepseek-v3 with
// the wg128_n256_ws_pair tile, which won three of those four cells by ~1%
// (bench/results/2026-11-27-h100-session8.md). Session 9 re-tuned M = 1, 8, 64 of mixtral-8x7b, olmoe-1b-7b
// and qwen3-30b-a3b and took the three cells where the new table won a same-call A/B in all three rounds:
// mixtral M=1 (m16_n64_k128: 0.243 against 0.251 ms), olmoe M=8 (m16: 0.199 against 0.203) and M=64
// (wg64_n256_ws: 0.283 against 0.285; bench/results/2026-11-27-h100-session9.md). Session 22 added the
// wg192_n192_ws buckets of the H200 table below (128-176 rows per expert, the same token ranges) without an
// H100 to measure them on (none was lent in sessions 16-22; hence no times): the tile wins there by loading
// fewer weight bytes per routed row, which the H100's lower bandwidth should favour, not undo. Two measured
// cells at 128 rows per expert changed with them (olmoe-1b-7b M=1024: wg128_n256_ws, 0.3688 ms; deepseek-v3
// M=4096: wg128_n256, 9.4215 ms); on the H200 wg192_n192_ws was 7% and 5% faster there. Session 27 moved
// the buckets' lower bound to 121 rows per expert with the H200's (unmeasured here).
constexpr const char* kH100Tables = R"json({
 "entries": [
  {
   "backend": "cuda_fused",
   "buckets": [
    {
     "choice": "m16_n32_s8",
     "max_tokens": 1,
     "time_ms": 0.037
    },
    {
     "choice": "m16",
     "max_tokens": 8,
     "time_ms": 0.1775
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 64,
     "time_ms": 0.4119
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 256,
     "time_ms": 0.4356
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 1024,
     "time_ms": 0.4784
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 1920
    },
    {
     "choice": "wg192_n192_ws",
     "max_tokens": 2816
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 4096,
     "time_ms": 0.7956
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 16384,
     "time_ms": 2.4888
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
     "choice": "m16_n32_s8",
     "max_tokens": 1,
     "time_ms": 0.0441
    },
    {
     "choice": "m16",
     "max_tokens": 8,
     "time_ms": 0.1996
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 64,
     "time_ms": 0.283
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 256,
     "time_ms": 0.3006
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 960
    },
    {
     "choice": "wg192_n192_ws",
     "max_tokens": 1408
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 4096,
     "time_ms": 0.87
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 16384,
     "time_ms": 3.0243
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
     "time_ms": 0.2423
    },
    {
     "choice": "wg64_n128",
     "max_tokens": 8,
     "time_ms": 0.8061
    },
    {
     "choice": "wg64_n128",
     "max_tokens": 64,
     "time_ms": 0.9338
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 256,
     "time_ms": 0.9772
    },
    {
     "choice": "wg128_n256_ws_pair",
     "max_tokens": 480
    },
    {
     "choice": "wg192_n192_ws",
     "max_tokens": 704
    },
    {
     "choice": "wg128_n256_ws_pair",
     "max_tokens": 1024,
     "time_ms": 1.474
    },
    {
     "choice": "wg128_n256_ws_pair",
     "max_tokens": 4096,
     "time_ms": 4.5393
    },
    {
     "choice": "wg128_n256_ws_pair",
     "max_tokens": 16384,
     "time_ms": 18.246
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
     "time_ms": 0.2377
    },
    {
     "choice": "wg64_n128",
     "max_tokens": 8,
     "time_ms": 1.5819
    },
    {
     "choice": "wg64_n256",
     "max_tokens": 64,
     "time_ms": 6.4541
    },
    {
     "choice": "wg64_n128_ws",
     "max_tokens": 256,
     "time_ms": 7.3157
    },
    {
     "choice": "wg64_n256",
     "max_tokens": 1024,
     "time_ms": 7.6451
    },
    {
     "choice": "wg128_n256",
     "max_tokens": 3840
    },
    {
     "choice": "wg192_n192_ws",
     "max_tokens": 5632
    },
    {
     "choice": "wg128_n256_ws_pair",
     "max_tokens": 16384,
     "time_ms": 22.4433
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

// NVIDIA H200, CUDA 13, driver 580, 2026-11-28 (session 18, bench/results/2026-11-28-h200-session18/ call 4):
// `fusedmoe tune` over the four presets at M = 1 .. 16384 on main with the producers' async signal. Against
// session 15's table (per cell the faster of the H100 table's and the heuristic's choice) in a same-call A/B:
// level or faster in every cell whose choice changed (mixtral-8x7b M=256 2.9%, deepseek-v3 M=256 1.6%, qwen3
// M=256 0.8%); cells with the same choice moved by up to 3% (compute-bound clocks). Session 19 (2026-11-28-
// h200-session19/ calls 6-7): M=1 of qwen3-30b-a3b, olmoe-1b-7b and mixtral-8x7b on two tiles (GEMM1/GEMM2),
// the fastest two-tile choice in both of two tune runs, then in a same-call A/B of 3 rounds against this
// table's one-tile choice 1.5%, 2.0% and 3.3% faster (deepseek-v3 M=1 kept: its two-tile choices were level).
// Session 21 (2026-11-28-h200-session21.md): wg192_n192_ws where an expert's rows (uniform routing) mostly
// fit one 192-row block but not one 128-row block, 128-176 rows per expert: olmoe-1b-7b M = 1017-1408,
// deepseek-v3 M = 4065-5632, qwen3-30b-a3b M = 2033-2816 and mixtral-8x7b M = 509-704 (the heuristic's
// regime). Same-call A/B against wg128_n256_ws, 3 rounds, at 128 / 150 / 176 rows: olmoe 7% / 19% / 16%
// faster, deepseek 5% / 21% / 12.5%, qwen3 6% / 20% / 16%, mixtral level / 7% / 8.6%; at 124 rows (olmoe
// M=992, deepseek M=3968) 1.1-1.4% slower, at 192 rows 1.4-4.6% slower, hence the bounds (the buckets without
// a time were not tuned at their size). Session 25 (2026-11-29-h200-session25.md section 4), at 200 replays
// (the power-capped sustained state): deepseek-v3 past 6144 tokens on wg128_n256_ws instead of the pair tile,
// 8.4% / 2.5-3.4% / 1.6% / 0.9% faster at M = 7168 / 8192 / 12288 / 16384 (the pair 1.6% ahead at 6144).
// Session 26 (2026-11-29-h200-session26.md): with the align's parity order for the pair tiles (experts of an
// even number of row blocks first, so fewer pairs straddle two experts) the pair tile against wg128_n256_ws
// at 200 replays, deepseek-v3 M = 6144 / 7168 / 8192 / 10240 / 12288 / 16384: 0.977 / 0.969 / 0.986 / 1.012 /
// 0.990 / 0.993; the landed form against the table before it (next call, 3 rounds): pair up to 16384 except
// 8193-11264 gave 0.974 / 1.003 / 0.999 / 1.006 / 1.006 at 7168 / 8192 / 10240 / 12288 / 16384, so only the
// pair's gain up to 8192 reproduced: pair up to 8192, wg128_n256_ws beyond. Session 27 (2026-11-29-h200-
// session27.md): since the all-padding warpgroups skip their MMAs, wg192_n192_ws from 121 rows per expert
// (was 128): qwen3-30b-a3b M > 1920, olmoe-1b-7b M > 960, mixtral-8x7b M > 480, deepseek-v3 M > 3840; the
// landed A/B at 121 / 124 rows, 3 rounds at 200 replays: qwen3 0.981 / 0.974, olmoe 0.989 / 0.973, mixtral
// 0.962 / 0.923, deepseek-v3 (124) 0.949. Session 28 (2026-11-29-h200-session28.md): with the parity order
// and the pair tiles' padding skip, mixtral-8x7b's pair tile from 705 tokens (was from 4097, wg128_n256_ws
// below): against the table at 200 replays, 2 rounds, M = 768 / 896 / 1024 / 1280 / 1536 / 2048 / 3072 /
// 4096: 0.930 / 1.001 / 0.970 / 1.013 / 0.982 / 0.998 / 0.985 / 0.993; the landed table against
// wg128_n256_ws, 3 rounds, M = 768 / 1024 / 1536 / 2048 / 3072 / 4096: 0.926 / 0.977 / 0.982 / 0.992 / 1.004
// / 1.004 (qwen3-30b-a3b and olmoe-1b-7b at M = 1024 / 4096: 3-12% slower on the pair, kept). Session 29
// (2026-11-29-h200-session29.md section 3): `fusedmoe tune` between the bench's token counts found the
// buckets that span 8-48 rows per expert 2-9% slower than the best tile (wg64_n256_ws or wg128_n256_ws where
// m32 or wg64_n128 win); new buckets, same-call A/B against the table, 3 rounds: olmoe-1b-7b m32 at 65-224
// (0.902 at 65 .. 0.952 at 224) and wg64_n128 at 225-384 (0.926-0.957), qwen3-30b-a3b m32 at 257-384
// (0.901-0.914) and wg64_n128 at 385-512 (0.943-0.949), mixtral-8x7b m16_n128_k128 at 9-48 (0.977-0.987) and
// wg64_n128 at 65-192 (0.966-0.970); deepseek-v3 m16_n128_k128 at 9-48 (0.983-0.995) and wg64_n128 at 257-768
// (0.962-0.986; level at 1024, kept); level at each new bucket's first size past it. Session 30
// (2026-11-29-h200-session30.md section 7): once GEMM1's epilogue chose the activation per row (042ac3e, the
// warp-specialised tiles 2-5% faster), wg64_n256_ws against the table, 2 rounds: qwen3-30b-a3b M = 384 / 448
// / 512 0.992 / 0.982 / 0.979, olmoe-1b-7b M = 224 / 256 / 320 / 384 0.989 / 0.998 / 0.991 / 0.987,
// mixtral-8x7b M = 128 / 192 1.031 / 1.023: wg64_n256_ws at qwen3 385-512 and olmoe 257-384. Session 31
// (2026-11-29-h200-session31.md): `fusedmoe tune` at the bench sizes and the remaining mid-size buckets
// under 042ac3e confirmed the table; between the bench sizes, wg64_n256_ws against the table's wg128_n256_ws,
// 2 rounds: qwen3-30b-a3b M = 640 / 768 / 896 0.955 / 0.963 / 0.990 (1024: 10% slower), deepseek-v3 M = 1280
// / 1536 0.989 / 0.991 (2048: 17% slower): wg64_n256_ws at qwen3 513-896 and deepseek 1025-1536.
constexpr const char* kH200Tables = R"json({
 "entries": [
  {
   "backend": "cuda_fused",
   "buckets": [
    {
     "choice": "m16/m16_n64_k128",
     "max_tokens": 1,
     "time_ms": 0.0295
    },
    {
     "choice": "m16",
     "max_tokens": 8,
     "time_ms": 0.1276
    },
    {
     "choice": "m16",
     "max_tokens": 64,
     "time_ms": 0.2913
    },
    {
     "choice": "m32",
     "max_tokens": 256,
     "time_ms": 0.3128
    },
    {
     "choice": "m32",
     "max_tokens": 384
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 512
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 896
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 1024,
     "time_ms": 0.3587
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 1920
    },
    {
     "choice": "wg192_n192_ws",
     "max_tokens": 2816
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 4096,
     "time_ms": 0.6832
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 16384,
     "time_ms": 2.1163
    }
   ],
   "device": "NVIDIA H200",
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
     "choice": "m16_n128_k128/m16_n32_s8",
     "max_tokens": 1,
     "time_ms": 0.0342
    },
    {
     "choice": "m32",
     "max_tokens": 8,
     "time_ms": 0.144
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 64,
     "time_ms": 0.2022
    },
    {
     "choice": "m32",
     "max_tokens": 224
    },
    {
     "choice": "wg64_n128",
     "max_tokens": 256
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 384
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 960
    },
    {
     "choice": "wg192_n192_ws",
     "max_tokens": 1024,
     "time_ms": 0.287
    },
    {
     "choice": "wg192_n192_ws",
     "max_tokens": 1408
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 4096,
     "time_ms": 0.7618
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 16384,
     "time_ms": 2.6098
    }
   ],
   "device": "NVIDIA H200",
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
     "choice": "m16/m16_n64_k128",
     "max_tokens": 1,
     "time_ms": 0.1706
    },
    {
     "choice": "m32",
     "max_tokens": 8,
     "time_ms": 0.5638
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 48
    },
    {
     "choice": "wg64_n128",
     "max_tokens": 64,
     "time_ms": 0.6598
    },
    {
     "choice": "wg64_n128",
     "max_tokens": 192
    },
    {
     "choice": "wg128_n256",
     "max_tokens": 256,
     "time_ms": 0.7085
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 480
    },
    {
     "choice": "wg192_n192_ws",
     "max_tokens": 704
    },
    {
     "choice": "wg128_n256_ws_pair",
     "max_tokens": 16384,
     "time_ms": 17.7144
    }
   ],
   "device": "NVIDIA H200",
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
     "time_ms": 0.1692
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 8,
     "time_ms": 1.0993
    },
    {
     "choice": "m16_n128_k128",
     "max_tokens": 48
    },
    {
     "choice": "wg64_n128",
     "max_tokens": 64,
     "time_ms": 4.4818
    },
    {
     "choice": "wg64_n128",
     "max_tokens": 256,
     "time_ms": 5.1246
    },
    {
     "choice": "wg64_n128",
     "max_tokens": 768
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 1024,
     "time_ms": 5.421
    },
    {
     "choice": "wg64_n256_ws",
     "max_tokens": 1536
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 3840
    },
    {
     "choice": "wg192_n192_ws",
     "max_tokens": 4096,
     "time_ms": 6.896
    },
    {
     "choice": "wg192_n192_ws",
     "max_tokens": 5632
    },
    {
     "choice": "wg128_n256_ws_pair",
     "max_tokens": 8192
    },
    {
     "choice": "wg128_n256_ws",
     "max_tokens": 16384
    }
   ],
   "device": "NVIDIA H200",
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
  static const TuneTable table = [] {
    TuneTable tables = TuneTable::parse(kH100Tables, "fusedmoe's built-in tune tables (H100)");
    const TuneTable h200 = TuneTable::parse(kH200Tables, "fusedmoe's built-in tune tables (H200)");
    for (const TuneEntry& entry : h200.entries()) tables.put(entry);
    return tables;
  }();
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
