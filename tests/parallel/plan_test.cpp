// `plan` numbers against independent references: what a real CPU stage of the same layout
// allocates, the parameter count of the whole model, and hand-computed byte counts.
#include "parallel/plan.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/buffer.h"
#include "core/error.h"
#include "model/layout.h"
#include "kernels/cpu/attention.h"
#include "model/stage_util.h"

namespace lt {

namespace {
LlamaConfig tiny(int kv_heads = 4) {
  LlamaConfig c;
  c.name = "tiny";
  c.dim = 64;
  c.hidden_dim = 128;
  c.n_layers = 5;
  c.n_heads = 8;
  c.n_kv_heads = kv_heads;
  c.vocab_size = 301;
  c.max_seq_len = 128;
  return c;
}
}  // namespace

namespace {
// What one CPU stage (tp rank 0 of tp, pp, stage; micro-batch 2 x 48) allocates for
// activations and workspace (bf16 buffers included), and what the plan of the same layout
// (opt.slots micro-batches in flight) says that stage's buffers take.
struct StageBytes {
  double actual, planned;
  int rows;
};
StageBytes stage_bytes(const LlamaConfig& c, int tp, int pp, int st, StageOptions opt) {
  ShardSpec s;
  s.tp = tp;
  s.pp = pp;
  s.pp_rank = st;
  ParamLayout layout(c, s);
  opt.micro_batch = 2;
  opt.seq_len = 48;
  test::TestStage stage = test::make_cpu_stage(layout, opt);
  PlanOptions o;
  o.shape = {1, tp * pp, tp, pp, 2 * opt.slots, 2, 48};  // opt.slots micro-batches: in flight on stage st
  o.device = "cpu";
  o.precision = opt.precision == Precision::bf16 ? "bf16" : "fp32";
  o.recompute = opt.recompute;
  o.sequence_parallel = opt.sequence_parallel;
  o.pack_weights = opt.pack_weights;
  o.cut = {StageCutMode::even, {}};  // the stage above is cut evenly
  const TrainPlan plan = make_train_plan(c, o);
  const StageSizes& t = plan.tables[size_t(st)];
  EXPECT_EQ(plan.stages[size_t(st)].in_flight, opt.slots);
  return {stage->activation_bytes(), t.carved_bytes(MemKind::activations) + t.carved_bytes(MemKind::workspace),
          stage->rows()};
}
}  // namespace

// The plan's activation + workspace bytes equal what the CPU stage actually allocates.
// A vocabulary large enough that the LM head runs in several chunks (and a shorter last one).
TEST(Plan, ActivationBytesMatchWithAChunkedHead) {
  LlamaConfig c = tiny();
  c.vocab_size = 200003;  // 16M logits / 200003 = 83 rows per chunk; 96 rows = 83 + 13
  ASSERT_EQ(head_chunk_rows(96, c.vocab_size), 83);
  for (int tp : {1, 2}) {
    const StageBytes b = stage_bytes(c, tp, 1, 0, StageOptions{});
    EXPECT_EQ(b.planned, b.actual) << "tp " << tp;
  }
}

// bf16 mode adds the stage's conversion buffers (GQA, so q/k/v differ; tp 1 and 2).
TEST(Plan, Bf16BufferBytesMatchTheStage) {
  LlamaConfig c = tiny(2);
  StageOptions opt;
  opt.precision = Precision::bf16;
  for (int tp : {1, 2})
    for (int pp_rank : {0, 1}) {
      const StageBytes b = stage_bytes(c, tp, 2, pp_rank, opt);
      EXPECT_EQ(b.planned, b.actual) << "tp " << tp << " stage " << pp_rank;
    }
}

TEST(Plan, ActivationBytesMatchTheModelsBuffers) {
  for (int kv : {4, 2}) {
    LlamaConfig c = tiny(kv);
    for (auto [tp, pp] : {std::pair{1, 1}, {2, 1}, {4, 1}, {1, 2}, {2, 3}}) {
      for (int st = 0; st < pp; ++st) {
        for (bool rec : {false, true}) {
          for (bool sp : {false, true}) {
            StageOptions opt;
            opt.recompute = rec;
            opt.slots = pp - st;
            opt.sequence_parallel = sp;
            const StageBytes b = stage_bytes(c, tp, pp, st, opt);
            EXPECT_EQ(b.planned, b.actual) << "kv " << kv << " tp " << tp << " pp " << pp << " stage " << st
                                           << " recompute " << rec << " sp " << sp;
            if (sp && tp > 1) {  // the residual stream shrinks: fewer bytes than without
              EXPECT_EQ(b.rows, 2 * 48 / tp);
              opt.sequence_parallel = false;
              EXPECT_LT(b.actual, stage_bytes(c, tp, pp, st, opt).actual) << "tp " << tp << " pp " << pp;
            }
          }
        }
      }
    }
  }
}

// The attention backward's per-thread buffers, counted once per core of a CPU rank. By hand,
// dim 128 with 4 heads (hd 32) and 2 KV heads, 2 × 64 tokens, tp 1 and 2 (2 heads over 1 KV
// head: the same group of 2): D = rowsum(dO∘O) for 2 × 64 rows, 512 B; bf16 also the group's
// q and dO as row words and row pairs, 4 × 2 × 64 rows × 16 words × 4 B = 32,768 B.
TEST(Plan, CountsTheAttentionScratchPerCore) {
  LlamaConfig c = tiny(2);
  c.dim = 128;
  c.n_heads = 4;
  for (const char* prec : {"bf16", "fp32"})
    for (int tp : {1, 2}) {
      PlanOptions o;
      o.shape = {tp, 1, tp, 1, 2, 2, 64};
      o.precision = prec;
      o.device = "cpu";
      const bool bf16 = std::string(prec) == "bf16";
      ShardSpec spec;
      spec.tp = tp;
      const LocalDims ld = local_dims(c, spec);
      const double per_thread =
          double(cpu::attention_backward_scratch_bytes({2, 64, ld.n_heads, ld.n_kv_heads, c.head_dim()}, bf16));
#if defined(__AVX512BF16__)
      EXPECT_DOUBLE_EQ(per_thread, bf16 ? 512 + 32768 : 512) << prec << " tp " << tp;
#endif
      o.cores_per_rank = 1;
      const double one = make_train_plan(c, o).stages[0].workspace;
      o.cores_per_rank = 4;
      const double four = make_train_plan(c, o).stages[0].workspace;
      EXPECT_DOUBLE_EQ(four - one, 3 * per_thread) << prec << " tp " << tp;
    }
}

TEST(Plan, SeedLayoutNumbers) {
  LlamaConfig c = preset_config("llama2-70b");
  PlanOptions o;
  o.shape = {32, 32, 8, 8, 512, 1, 4096};
  o.zero1 = true;
  o.recompute = true;
  o.device = "h100";
  TrainPlan p = make_train_plan(c, o);
  EXPECT_EQ(p.layout.dp, 16);
  EXPECT_EQ(p.layout.micro_batches, 32);
  EXPECT_EQ(p.tokens_per_step, 512 * 4096);
  ASSERT_EQ(p.stages.size(), 8u);
  // All tp ranks of all stages hold the whole model once (tp rank 0 holds the largest slices,
  // which here are exact: 32000 and every width divide by 8), except that every tp rank
  // keeps its own copy of the 2 * 80 + 1 norm weights.
  int64_t total = 0;
  for (const auto& m : p.stages) total += m.params * 8;
  EXPECT_EQ(total - 7 * int64_t(161) * 8192, c.num_params());
  // The CUDA stage in bf16: fp32 master weights plus a bf16 compute copy of every matrix (a
  // middle stage: all of its parameters but the 20 norm vectors), 4 B gradients (+ the 1/dp
  // reduce-scatter range), AdamW's m and v (8 B) / dp with ZeRO-1.
  const StageMemory& m = p.stages[3];
  EXPECT_NEAR(m.weights, 4.0 * m.params + 2.0 * (m.params - 20 * 8192), 4.0 * 16 * 16 + 64);
  EXPECT_NEAR(m.gradients, 4.0 * m.params * (1 + 1.0 / 16), 4.0 * 16 * 16 + 64);
  EXPECT_NEAR(m.optimizer, 8.0 * m.params / 16, 8.0 * 16 + 128);
  EXPECT_EQ(m.in_flight, 5);  // 1F1B: pp - stage
  EXPECT_EQ(p.stages[0].in_flight, 8);
  // Model FLOPs: config.h's per-token count x tokens.
  EXPECT_DOUBLE_EQ(p.model_flops_per_step, c.flops_per_token(4096) * 512 * 4096);
  EXPECT_GT(p.hardware_flops_per_step, p.model_flops_per_step);
  EXPECT_GT(p.mfu, 0.2);
  EXPECT_LT(p.mfu, 0.4);  // below the kernel efficiency: bubble, recomputation, uneven stages
  EXPECT_NEAR(p.total_seconds, 1500 * p.step_seconds, 1e-6 * p.total_seconds);
  // Without recomputation a layer keeps, per token on a tp rank (D 8192, local q 1024, k and v
  // 128 each, 8 heads, MLP 3584): x and x_mid in fp32 (8 D), ln1 and ln2 in bf16 (4 D), q|k|v,
  // the attention output and h in bf16 (2 x (1280 + 1024 + 3584)), the fp32 gate|up
  // pre-activations (4 x 7168), lse and rstd (4 x 8 + 8): 138,792 B; with recomputation only its
  // fp32 input (4 D = 32,768 B). Per micro-batch in flight a middle stage also keeps its fp32
  // output, final norm (bf16) and rstd: 6 D + 4 B per token (4096 tokens, 10 layers, 5 in flight).
  EXPECT_DOUBLE_EQ(m.activations_full, 5.0 * 4096 * (10 * 138792 + 6 * 8192 + 4));
  EXPECT_DOUBLE_EQ(m.activations_recompute, 5.0 * 4096 * (10 * 32768 + 6 * 8192 + 4));
}

TEST(Plan, SingleRankFp32ByHand) {
  LlamaConfig c = tiny();
  PlanOptions o;
  o.shape = {1, 1, 1, 1, 4, 2, 64};
  o.precision = "fp32";
  o.device = "cpu";
  o.runtime_bytes = 1;
  TrainPlan p = make_train_plan(c, o);
  ASSERT_EQ(p.stages.size(), 1u);
  const StageMemory& m = p.stages[0];
  EXPECT_EQ(m.params, c.num_params());
  // fp32 weights + packed GEMM copies (forward and input-gradient orientation, 4 B each) of
  // q, o [64,64], k, v [32,64], gate, up, down [128,64] per layer and the untied head [301,64].
  const double gemm = 5 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 128 * 64) + 301 * 64;
  EXPECT_DOUBLE_EQ(m.weights, 4.0 * m.params + 8.0 * gemm);
  EXPECT_DOUBLE_EQ(m.optimizer, 8.0 * m.params);
  o.pack_weights = false;  // train.pack_weights=false: the fp32 weights only
  EXPECT_DOUBLE_EQ(make_train_plan(c, o).stages[0].weights, 4.0 * m.params);
  o.pack_weights = true;
  // Per layer, N = 2*64 tokens: 4 N·D + 2 N + 2 N·Q + 2 N·KV + N·H + 3 N·F floats (every buffer
  // here is a whole number of 64-byte lines, so the table adds no padding).
  const double N = 128, D = 64, Q = 64, KV = 32, H = 8, F = 128;
  const double layer = 4 * N * D + 2 * N + 2 * N * Q + 2 * N * KV + N * H + 3 * N * F;
  EXPECT_DOUBLE_EQ(m.activations_full, 4 * (5 * layer + N + 2 * N * D + N));
  EXPECT_DOUBLE_EQ(m.activations_recompute, 4 * (5 * N * D + N + 2 * N * D + N));
  EXPECT_EQ(p.layout.bubble(), 0.0);
  // Alone: no comm or pipeline buffers. One layer's backward (d_res, d_ln: N·D; d_q, d_att:
  // N·Q; d_k, d_v: N·KV; d_gate, d_up, d_h: N·F), the LM head's one chunk of all 128 rows
  // (logits 128 x 301, max, lse, 2 stats), the RoPE tables (2 x 64 x 4), the attention
  // backward's per-thread buffer (one core: D = rowsum(dO∘O) for 128 rows x 8 heads, 4 KiB),
  // and the data loader's samples, inputs and targets (3 x 4 sequences of 65 tokens).
  const double logits_lines = std::ceil(128.0 * 301 * 4 / 64) * 64;
  const double backward = 4 * (2 * N * D + 2 * N * Q + 2 * N * KV + 3 * N * F);
  EXPECT_DOUBLE_EQ(m.workspace, backward + logits_lines + 4 * (4 * 128) + 4 * (2 * 64 * 4) +
                                    double(cpu::attention_backward_scratch_bytes({2, 64, 8, 4, 8}, false)) +
                                    3 * 4 * 65 * 4);
}

// The plan cuts the layers as the trainer does (by cost by default) and reports each stage's
// cost: stories15M at pp 2 puts 5 layers on the first stage and 1 + the head on the last (the
// numbers of tests/parallel/stage_balance_test.cpp).
TEST(Plan, CutsByCostAndReportsIt) {
  LlamaConfig c = preset_config("stories15m");
  PlanOptions o;
  o.shape = {1, 2, 1, 2, 8, 1, 256};
  o.device = "cpu";
  TrainPlan p = make_train_plan(c, o);
  ASSERT_EQ(p.stages.size(), 2u);
  EXPECT_EQ(p.stages[0].layers, 5);
  EXPECT_EQ(p.stages[1].first_layer, 5);
  EXPECT_DOUBLE_EQ(p.stages[0].cost, 5 * 6414336.0 + 3 * 288);
  EXPECT_DOUBLE_EQ(p.stages[1].cost, 6414336.0 + 55456000.0);
  o.cut = {StageCutMode::even, {}};
  TrainPlan even = make_train_plan(c, o);
  EXPECT_EQ(even.stages[0].layers, 3);
  EXPECT_GT(even.step_seconds, p.step_seconds);  // the slowest stage sets the pace
}

TEST(Plan, BadInputs) {
  PlanOptions o;
  o.shape = {1, 8, 1, 1, 8, 1, 64};
  o.device = "tpu";
  EXPECT_THROW(make_train_plan(tiny(), o), Error);
  o.device = "cpu";
  o.efficiency = 0;
  EXPECT_THROW(make_train_plan(tiny(), o), Error);
  o.efficiency = 0.4;
  o.shape.seq_len = 0;
  EXPECT_THROW(make_train_plan(tiny(), o), Error);
  // Sequence parallelism splits each micro-batch's 63 tokens over tp = 2: not whole.
  o.shape = {1, 8, 2, 1, 8, 1, 63};
  o.sequence_parallel = true;
  try {
    make_train_plan(tiny(), o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--mbs x --seq = 63 tokens per micro-batch divisible by --tp = 2"),
              std::string::npos)
        << e.what();
  }
  o.shape.seq_len = 64;
  EXPECT_NO_THROW(make_train_plan(tiny(), o));
}

}  // namespace lt
