#include "ckpt/llama2c.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <regex>

#include "core/error.h"
#include <fmt/format.h>

namespace lt {

namespace {

struct Header {
  int32_t dim, hidden, layers, heads, kv_heads, vocab, seq;
};

// Floats after the header for this config (with the freq_cis tables, with/without wcls).
bool expected_floats(const Header& h, uint64_t* n) {
  if (h.dim <= 0 || h.hidden <= 0 || h.layers <= 0 || h.heads <= 0 || h.kv_heads <= 0 || h.vocab == 0 ||
      h.vocab == INT32_MIN || h.seq <= 0 || h.dim % h.heads != 0 || h.heads % h.kv_heads != 0)
    return false;
  // 128-bit arithmetic: a garbage header must not wrap around to a plausible size.
  using u128 = unsigned __int128;
  u128 D = u128(h.dim), F = u128(h.hidden), L = u128(h.layers), V = u128(std::abs(h.vocab));
  u128 hd = D / u128(h.heads), KV = u128(h.kv_heads) * hd, S = u128(h.seq);
  u128 total = V * D + L * (D + D * D + 2 * KV * D + D * D + D + 3 * F * D) + D + S * hd + (h.vocab < 0 ? V * D : 0);
  if (total > (u128(1) << 60)) return false;
  *n = uint64_t(total);
  return true;
}

Header read_header(const MappedFile& m) {
  LT_CHECK(m.size() >= 28, "llama2.c checkpoint '{}': {} bytes, shorter than the 28-byte header", m.path(), m.size());
  Header h;
  std::memcpy(&h, m.data(), 28);
  return h;
}

}  // namespace

bool looks_like_llama2c(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  MappedFile m(path);
  if (m.size() < 28) return false;
  uint64_t n;
  return expected_floats(read_header(m), &n) && 28 + 4 * n == m.size();
}

Llama2cSource::Llama2cSource(const std::string& path) : map_(path) {
  Header h = read_header(map_);
  uint64_t n = 0;
  LT_CHECK(expected_floats(h, &n),
           "llama2.c checkpoint '{}': implausible header dim={} hidden_dim={} n_layers={} n_heads={} n_kv_heads={} "
           "vocab_size={} seq_len={} (expected the legacy version-0 format of llama2.c's run.c)",
           path, h.dim, h.hidden, h.layers, h.heads, h.kv_heads, h.vocab, h.seq);
  LT_CHECK(28 + 4 * n == map_.size(),
           "llama2.c checkpoint '{}': {} bytes, but the header (dim={}, n_layers={}, vocab_size={}{}) needs {} "
           "(truncated, or not the legacy version-0 format)",
           path, map_.size(), h.dim, h.layers, h.vocab, h.vocab < 0 ? ", untied classifier" : "", 28 + 4 * n);
  config_.name = std::filesystem::path(path).stem().string();
  config_.dim = h.dim;
  config_.hidden_dim = h.hidden;
  config_.n_layers = h.layers;
  config_.n_heads = h.heads;
  config_.n_kv_heads = h.kv_heads;
  config_.vocab_size = std::abs(h.vocab);
  config_.max_seq_len = h.seq;
  config_.norm_eps = 1e-5f;       // llama2.c's run.c hard-codes these two
  config_.rope_theta = 10000.0f;
  config_.tie_embeddings = h.vocab > 0;
  config_.validate();
}

bool Llama2cSource::locate(const std::string& name, size_t* offset, std::vector<int64_t>* shape, bool* rope) const {
  const int64_t D = config_.dim, F = config_.hidden_dim, L = config_.n_layers, V = config_.vocab_size;
  const int64_t KV = config_.kv_dim(), S = config_.max_seq_len, hd = config_.head_dim();
  // Offsets (in floats) of each array after the header.
  const int64_t emb = 0, rms_att = emb + V * D, wq = rms_att + L * D, wk = wq + L * D * D, wv = wk + L * KV * D,
                wo = wv + L * KV * D, rms_ffn = wo + L * D * D, w1 = rms_ffn + L * D, w2 = w1 + L * F * D,
                w3 = w2 + L * D * F, rms_final = w3 + L * F * D, wcls = rms_final + D + S * hd;
  *rope = false;
  auto set = [&](int64_t floats, std::vector<int64_t> s) {
    *offset = 28 + size_t(floats) * 4;
    *shape = std::move(s);
    return true;
  };
  if (name == "model.embed_tokens.weight") return set(emb, {V, D});
  if (name == "model.norm.weight") return set(rms_final, {D});
  if (name == "lm_head.weight") return config_.tie_embeddings ? false : set(wcls, {V, D});
  static const std::regex re(R"(model\.layers\.(\d+)\.(.+))");
  std::smatch m;
  if (!std::regex_match(name, m, re)) return false;
  int64_t l = std::stoll(m[1].str().substr(0, 9));
  if (l >= L) return false;
  const std::string part = m[2];
  if (part == "input_layernorm.weight") return set(rms_att + l * D, {D});
  if (part == "post_attention_layernorm.weight") return set(rms_ffn + l * D, {D});
  if (part == "self_attn.q_proj.weight") return *rope = true, set(wq + l * D * D, {D, D});
  if (part == "self_attn.k_proj.weight") return *rope = true, set(wk + l * KV * D, {KV, D});
  if (part == "self_attn.v_proj.weight") return set(wv + l * KV * D, {KV, D});
  if (part == "self_attn.o_proj.weight") return set(wo + l * D * D, {D, D});
  if (part == "mlp.gate_proj.weight") return set(w1 + l * F * D, {F, D});
  if (part == "mlp.down_proj.weight") return set(w2 + l * D * F, {D, F});
  if (part == "mlp.up_proj.weight") return set(w3 + l * F * D, {F, D});
  return false;
}

bool Llama2cSource::has(const std::string& name) const {
  size_t off;
  std::vector<int64_t> shape;
  bool rope;
  return locate(name, &off, &shape, &rope);
}

Tensor Llama2cSource::get(const std::string& name) const {
  size_t off;
  Tensor t;
  bool rope;
  if (!locate(name, &off, &t.shape, &rope)) fail("{}: no tensor '{}'", describe(), name);
  t.dtype = DType::F32;
  size_t nbytes = size_t(t.numel()) * 4;
  if (!rope) {
    t.bytes = {map_.data() + off, nbytes};
    return t;
  }
  // q/k: copy (the mapping need not be float-aligned) and permute rows into HF order.
  auto meta = std::make_shared<std::vector<float>>(size_t(t.numel()));
  auto hf = std::make_shared<std::vector<float>>(size_t(t.numel()));
  std::memcpy(meta->data(), map_.data() + off, nbytes);
  int heads = int(t.shape[0] / config_.head_dim());
  permute_meta_to_hf(meta->data(), hf->data(), heads, config_.head_dim(), t.shape[1]);
  t.bytes = {reinterpret_cast<const uint8_t*>(hf->data()), nbytes};
  t.owner = hf;
  return t;
}

namespace {
void write_llama2c_file(const TensorSource& src, const std::string& tmp);
}

void write_llama2c(const TensorSource& src, const std::string& path) {
  const LlamaConfig& c = src.config();
  LT_CHECK(c.norm_eps == 1e-5f && c.rope_theta == 10000.0f,
           "llama2.c format: run.c fixes rms_norm_eps = 1e-5 and rope_theta = 10000; this model has {} and {}",
           c.norm_eps, c.rope_theta);
  LT_CHECK(c.rope_scaling.type.empty(), "llama2.c format: run.c has no rope_scaling; this model has {}",
           c.rope_scaling.json);
  LT_CHECK(!std::filesystem::is_directory(path), "llama2.c output '{}' is a directory; give a file name (e.g. model.bin)",
           path);
  // Written under a temporary name and renamed only when complete; on failure nothing is left.
  std::string tmp = path + ".tmp";
  try {
    write_llama2c_file(src, tmp);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    fail("cannot rename {} to {}: {}", tmp, path, std::strerror(e));
  }
}

namespace {
void write_llama2c_file(const TensorSource& src, const std::string& tmp) {
  const LlamaConfig& c = src.config();
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  LT_CHECK(f, "cannot create llama2.c file '{}' (as {} first): {}", tmp.substr(0, tmp.size() - 4), tmp,
           std::strerror(errno));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(f, std::fclose);
  auto put = [&](const void* p, size_t n) {
    LT_CHECK(std::fwrite(p, 1, n, f) == n, "cannot write {}: {}", tmp, std::strerror(errno));
  };
  int32_t header[7] = {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                       c.tie_embeddings ? c.vocab_size : -c.vocab_size, c.max_seq_len};
  put(header, sizeof header);
  std::vector<float> buf, meta;
  auto tensor = [&](const std::string& name, bool rope) {
    if (!src.has(name)) fail("{}: missing tensor '{}'", src.describe(), name);
    Tensor t = src.get(name);
    LT_CHECK(is_float_dtype(t.dtype), "{}: tensor '{}' is not floating point", src.describe(), name);
    buf.resize(size_t(t.numel()));
    convert_elements(t.dtype, t.bytes.data(), DType::F32, buf.data(), buf.size());
    if (rope) {
      meta.resize(buf.size());
      permute_hf_to_meta(buf.data(), meta.data(), int(t.shape[0] / c.head_dim()), c.head_dim(), t.shape[1]);
      buf.swap(meta);
    }
    put(buf.data(), buf.size() * 4);
    src.release(name);
  };
  auto per_layer = [&](const char* part, bool rope) {
    for (int l = 0; l < c.n_layers; ++l) tensor(fmt::format("model.layers.{}.{}", l, part), rope);
  };
  tensor("model.embed_tokens.weight", false);
  per_layer("input_layernorm.weight", false);
  per_layer("self_attn.q_proj.weight", true);
  per_layer("self_attn.k_proj.weight", true);
  per_layer("self_attn.v_proj.weight", false);
  per_layer("self_attn.o_proj.weight", false);
  per_layer("post_attention_layernorm.weight", false);
  per_layer("mlp.gate_proj.weight", false);
  per_layer("mlp.down_proj.weight", false);
  per_layer("mlp.up_proj.weight", false);
  tensor("model.norm.weight", false);
  // Legacy RoPE tables (run.c ignores them): cos / sin of pos * theta^(-2i/hd).
  const int hd = c.head_dim();
  for (int part = 0; part < 2; ++part) {
    buf.assign(size_t(c.max_seq_len) * hd / 2, 0.0f);
    for (int p = 0; p < c.max_seq_len; ++p)
      for (int i = 0; i < hd / 2; ++i) {
        float freq = 1.0f / std::pow(c.rope_theta, float(2 * i) / float(hd));
        float a = float(p) * freq;
        buf[size_t(p) * hd / 2 + i] = part == 0 ? std::cos(a) : std::sin(a);
      }
    put(buf.data(), buf.size() * 4);
  }
  if (!c.tie_embeddings) tensor("lm_head.weight", false);
  LT_CHECK(std::fflush(f) == 0 && fsync(fileno(f)) == 0, "cannot write {}: {}", tmp, std::strerror(errno));
  LT_CHECK(std::fclose(closer.release()) == 0, "cannot write {}: {}", tmp, std::strerror(errno));
}
}  // namespace

void permute_meta_to_hf(const float* src, float* dst, int n_heads, int hd, int64_t cols) {
  for (int h = 0; h < n_heads; ++h)
    for (int j = 0; j < hd / 2; ++j) {
      const float* even = src + (int64_t(h) * hd + 2 * j) * cols;
      std::memcpy(dst + (int64_t(h) * hd + j) * cols, even, size_t(cols) * 4);
      std::memcpy(dst + (int64_t(h) * hd + hd / 2 + j) * cols, even + cols, size_t(cols) * 4);
    }
}

void permute_hf_to_meta(const float* src, float* dst, int n_heads, int hd, int64_t cols) {
  for (int h = 0; h < n_heads; ++h)
    for (int j = 0; j < hd / 2; ++j) {
      float* even = dst + (int64_t(h) * hd + 2 * j) * cols;
      std::memcpy(even, src + (int64_t(h) * hd + j) * cols, size_t(cols) * 4);
      std::memcpy(even + cols, src + (int64_t(h) * hd + hd / 2 + j) * cols, size_t(cols) * 4);
    }
}

}  // namespace lt
