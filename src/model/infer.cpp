#include "model/infer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "kernels/cpu/rope.h"

namespace lt {

namespace {

// out[r] = sum_c W[r, c] x[c]; W is [rows, cols] row-major ([out, in], as HF stores Linear).
void matvec(float* out, const float* W, const float* x, int64_t rows, int64_t cols) {
#pragma omp parallel for if (rows * cols > (1 << 18)) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* w = W + r * cols;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < cols; ++c) s += w[c] * x[c];
    out[r] = s;
  }
}

void rmsnorm(float* out, const float* x, const float* weight, int n, float eps) {
  float ss = 0.0f;
  for (int i = 0; i < n; ++i) ss += x[i] * x[i];
  float inv = 1.0f / std::sqrt(ss / float(n) + eps);
  for (int i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * inv);
}

// Rotate-half RoPE on each head of `v` (heads x hd) at one position.
void rope(float* v, int heads, int hd, const float* cos, const float* sin) {
  const int half = hd / 2;
  for (int h = 0; h < heads; ++h) {
    float* x = v + h * hd;
    for (int j = 0; j < half; ++j) {
      float a = x[j], b = x[j + half];
      x[j] = a * cos[j] - b * sin[j];
      x[j + half] = b * cos[j] + a * sin[j];
    }
  }
}

}  // namespace

InferenceModel::InferenceModel(const LlamaConfig& config, std::vector<float> weights)
    : c_(config), layout_(config, ShardSpec{}), w_(std::move(weights)) {
  LT_CHECK(w_.size() == layout_.total(), "inference: weight buffer has {} floats, the model needs {}", w_.size(),
           layout_.total());
  v_ = make_views(layout_, w_.data());
  const int D = c_.dim, KV = c_.kv_dim(), hd = c_.head_dim(), S = c_.max_seq_len;
  k_cache_.assign(size_t(c_.n_layers) * S * KV, 0.0f);
  v_cache_.assign(size_t(c_.n_layers) * S * KV, 0.0f);
  x_.resize(D);
  xb_.resize(D);
  q_.resize(D);
  k_.resize(KV);
  att_.resize(S);
  hb_.resize(c_.hidden_dim);
  hb2_.resize(c_.hidden_dim);
  logits_.resize(c_.vocab_size);
  // The training kernels' tables (angles in double, rope_scaling applied), one row per position.
  rope_cos_.resize(size_t(S) * hd / 2);
  rope_sin_.resize(size_t(S) * hd / 2);
  cpu::rope_tables(rope_cos_.data(), rope_sin_.data(), S, hd, rope_inv_freq(c_).data());
}

const float* InferenceModel::step(int token) {
  LT_CHECK(token >= 0 && token < c_.vocab_size, "inference: token id {} outside the vocabulary [0, {})", token,
           c_.vocab_size);
  LT_CHECK(pos_ < c_.max_seq_len, "inference: the sequence reached max_position_embeddings = {}", c_.max_seq_len);
  const int D = c_.dim, KV = c_.kv_dim(), hd = c_.head_dim(), H = c_.n_heads, F = c_.hidden_dim, S = c_.max_seq_len;
  const int group = c_.n_heads / c_.n_kv_heads;
  const float scale = 1.0f / std::sqrt(float(hd));
  const float* cos = rope_cos_.data() + size_t(pos_) * hd / 2;
  const float* sin = rope_sin_.data() + size_t(pos_) * hd / 2;
  std::copy_n(v_.embed + size_t(token) * D, D, x_.data());

  for (int l = 0; l < c_.n_layers; ++l) {
    const LayerWeights& w = v_.layers[size_t(l)];
    float* kc = k_cache_.data() + size_t(l) * S * KV;
    float* vc = v_cache_.data() + size_t(l) * S * KV;
    // Attention.
    rmsnorm(xb_.data(), x_.data(), w.attn_norm, D, c_.norm_eps);
    matvec(q_.data(), w.wq, xb_.data(), D, D);
    matvec(kc + size_t(pos_) * KV, w.wk, xb_.data(), KV, D);
    matvec(vc + size_t(pos_) * KV, w.wv, xb_.data(), KV, D);
    rope(q_.data(), H, hd, cos, sin);
    rope(kc + size_t(pos_) * KV, c_.n_kv_heads, hd, cos, sin);
    for (int h = 0; h < H; ++h) {
      const float* q = q_.data() + h * hd;
      const int kvh = h / group;
      float mx = -INFINITY;
      for (int t = 0; t <= pos_; ++t) {
        const float* k = kc + size_t(t) * KV + kvh * hd;
        float s = 0.0f;
        for (int i = 0; i < hd; ++i) s += q[i] * k[i];
        att_[t] = s * scale;
        mx = std::max(mx, att_[t]);
      }
      float sum = 0.0f;
      for (int t = 0; t <= pos_; ++t) sum += (att_[t] = std::exp(att_[t] - mx));
      float* out = xb_.data() + h * hd;  // xb is free again: reuse it for the heads' outputs
      std::fill_n(out, hd, 0.0f);
      for (int t = 0; t <= pos_; ++t) {
        const float* v = vc + size_t(t) * KV + kvh * hd;
        float a = att_[t] / sum;
        for (int i = 0; i < hd; ++i) out[i] += a * v[i];
      }
    }
    matvec(q_.data(), w.wo, xb_.data(), D, D);  // q_ holds o_proj's output
    for (int i = 0; i < D; ++i) x_[i] += q_[i];
    // SwiGLU MLP.
    rmsnorm(xb_.data(), x_.data(), w.ffn_norm, D, c_.norm_eps);
    matvec(hb_.data(), w.w_gate, xb_.data(), F, D);
    matvec(hb2_.data(), w.w_up, xb_.data(), F, D);
    for (int i = 0; i < F; ++i) {
      float g = hb_[i];
      hb_[i] = g / (1.0f + std::exp(-g)) * hb2_[i];
    }
    matvec(xb_.data(), w.w_down, hb_.data(), D, F);
    for (int i = 0; i < D; ++i) x_[i] += xb_[i];
  }
  rmsnorm(xb_.data(), x_.data(), v_.final_norm, D, c_.norm_eps);
  matvec(logits_.data(), v_.lm_head, xb_.data(), c_.vocab_size, D);
  ++pos_;
  return logits_.data();
}

std::vector<float> InferenceModel::prefill(const std::vector<int32_t>& tokens) {
  reset();
  std::vector<float> out;
  out.reserve(tokens.size() * size_t(c_.vocab_size));
  for (int32_t t : tokens) {
    const float* l = step(t);
    out.insert(out.end(), l, l + c_.vocab_size);
  }
  return out;
}

int sample_token(const float* logits, int vocab, float temperature, float top_p, Rng& rng) {
  if (temperature <= 0.0f) return int(std::max_element(logits, logits + vocab) - logits);
  float mx = *std::max_element(logits, logits + vocab);
  std::vector<double> p(static_cast<size_t>(vocab));
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) sum += (p[size_t(i)] = std::exp(double(logits[i] - mx) / temperature));
  std::vector<int> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  int keep = vocab;
  if (top_p < 1.0f) {
    // Most likely first (ties by id, so the choice is deterministic), then the shortest
    // prefix whose probability reaches top_p.
    std::sort(order.begin(), order.end(), [&](int a, int b) { return p[size_t(a)] != p[size_t(b)] ? p[size_t(a)] > p[size_t(b)] : a < b; });
    double cum = 0.0;
    for (int i = 0; i < vocab; ++i) {
      cum += p[size_t(order[size_t(i)])] / sum;
      if (cum >= double(top_p)) {
        keep = i + 1;
        break;
      }
    }
  }
  double mass = 0.0;
  for (int i = 0; i < keep; ++i) mass += p[size_t(order[size_t(i)])];
  double u = rng.uniform_double() * mass, cum = 0.0;
  for (int i = 0; i < keep; ++i) {
    cum += p[size_t(order[size_t(i)])];
    if (u < cum) return order[size_t(i)];
  }
  return order[size_t(keep - 1)];
}

}  // namespace lt
