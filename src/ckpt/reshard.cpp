#include "ckpt/reshard.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace lt {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

int64_t product(const std::vector<int64_t>& s, size_t from = 0) {
  int64_t n = 1;
  for (size_t i = from; i < s.size(); ++i) n *= s[i];
  return n;
}

// Calls fn(local_index, global_index, count) for the contiguous runs that elements [a, b) of
// the flattened local tensor occupy in the flattened global tensor.
template <typename Fn>
void for_each_run(const StoredSlice& s, size_t a, size_t b, Fn fn) {
  if (a >= b) return;
  if (s.split_dim <= 0) {
    size_t base = s.split_dim == 0 ? size_t(s.split_begin * product(s.shape, 1)) : 0;
    fn(a, base + a, b - a);
    return;
  }
  const size_t c = size_t(s.shape[1]), gc = size_t(s.global_shape[1]);
  for (size_t i = a; i < b;) {
    size_t r = i / c, k = i % c, n = std::min(b - i, c - k);
    fn(i, r * gc + size_t(s.split_begin) + k, n);
    i += n;
  }
}

// Parses and checks one piece's slice record against the file and itself, so a crafted
// checkpoint cannot make the loader read or write out of bounds.
StoredSlice parse_slice(const SafetensorsFile& f, const std::string& tensor, const std::string& record, bool ranged) {
  auto bad = [&](const std::string& why) -> StoredSlice {
    fail("{}: tensor '{}': bad slice metadata ({}): {}", f.path(), tensor, why, record);
  };
  json j;
  try {
    j = json::parse(record);
  } catch (const json::exception&) {
    return bad("not JSON");
  }
  StoredSlice s;
  s.file = &f;
  s.tensor = tensor;
  try {
    s.global_shape = j.at("global_shape").get<std::vector<int64_t>>();
    s.split_dim = j.at("split_dim").get<int>();
    s.split_begin = j.at("split_begin").get<int64_t>();
    const TensorInfo& t = f.at(tensor);
    if (ranged) {
      s.shape = j.at("shape").get<std::vector<int64_t>>();
      s.begin = j.at("begin").get<size_t>();
      s.end = j.at("end").get<size_t>();
    } else {
      s.shape = t.shape;
      s.begin = 0;
      s.end = size_t(t.numel());
    }
  } catch (const json::exception& e) {
    return bad(e.what());
  }
  const size_t nd = s.global_shape.size();
  if (nd < 1 || nd > 2 || s.shape.size() != nd) return bad("expected 1-D or 2-D shapes of equal rank");
  if (s.split_dim < -1 || s.split_dim >= int(nd)) return bad("split_dim out of range");
  for (size_t d = 0; d < nd; ++d) {
    if (s.shape[d] < 0 || s.global_shape[d] < 0 || s.global_shape[d] > (int64_t(1) << 40)) return bad("bad shape");
    if (int(d) == s.split_dim) {
      if (s.split_begin < 0 || s.split_begin + s.shape[d] > s.global_shape[d]) return bad("slice outside the tensor");
    } else if (s.shape[d] != s.global_shape[d]) {
      return bad("shape differs from global_shape outside split_dim");
    }
  }
  if (s.split_dim == -1 && s.split_begin != 0) return bad("replicated tensor with split_begin");
  uint64_t numel = 1;
  for (auto d : s.global_shape)
    if (__builtin_mul_overflow(numel, uint64_t(d), &numel) || numel > (uint64_t(1) << 40))
      return bad("global tensor too large");
  const TensorInfo& t = f.at(tensor);
  if (s.begin > s.end || s.end > size_t(product(s.shape)) || size_t(t.numel()) != s.end - s.begin)
    return bad("element range does not match the stored tensor");
  return s;
}

// Reassembles global tensor bytes from pieces; every element must be covered.
std::shared_ptr<std::vector<uint8_t>> assemble(const std::vector<StoredSlice>& pieces, DType dtype,
                                               const std::string& what) {
  const StoredSlice& first = pieces.front();
  const size_t es = dtype_size(dtype), numel = size_t(product(first.global_shape));
  auto out = std::make_shared<std::vector<uint8_t>>(numel * es);
  std::vector<uint8_t> covered(numel, 0);
  for (const auto& s : pieces) {
    if (s.global_shape != first.global_shape)
      fail("{}: pieces disagree on the global shape ({} vs {})", what, s.file->path(), first.file->path());
    const TensorInfo& t = s.file->at(s.tensor);
    if (t.dtype != dtype) fail("{}: pieces have different dtypes ({} in {})", what, dtype_name(t.dtype), s.file->path());
    const uint8_t* src = s.file->bytes(t).data();
    for_each_run(s, s.begin, s.end, [&](size_t li, size_t gi, size_t n) {
      std::memcpy(out->data() + gi * es, src + (li - s.begin) * es, n * es);
      std::memset(covered.data() + gi, 1, n);
    });
  }
  auto hole = std::find(covered.begin(), covered.end(), 0);
  if (hole != covered.end())
    fail("{}: element {} of the global tensor is in no stored piece (missing shard file?)", what,
         hole - covered.begin());
  return out;
}

bool same_architecture(const LlamaConfig& a, const LlamaConfig& b) {
  return a.dim == b.dim && a.hidden_dim == b.hidden_dim && a.n_layers == b.n_layers && a.n_heads == b.n_heads &&
         a.n_kv_heads == b.n_kv_heads && a.vocab_size == b.vocab_size && a.tie_embeddings == b.tie_embeddings;
}

void check_architecture(const CheckpointRef& ckpt, const ParamLayout& target) {
  const LlamaConfig &a = ckpt.meta.config, &b = target.config();
  if (!same_architecture(a, b))
    fail("checkpoint {} holds a model with hidden_size={} intermediate_size={} layers={} heads={} kv_heads={} "
         "vocab={} tied={}, but the target expects {} {} {} {} {} {} {}",
         ckpt.dir, a.dim, a.hidden_dim, a.n_layers, a.n_heads, a.n_kv_heads, a.vocab_size, a.tie_embeddings, b.dim,
         b.hidden_dim, b.n_layers, b.n_heads, b.n_kv_heads, b.vocab_size, b.tie_embeddings);
}

}  // namespace

CheckpointSource::CheckpointSource(const CheckpointRef& ref) : dir_(ref.dir), meta_(ref.meta) {
  for (int p = 0; p < meta_.pp; ++p)
    for (int t = 0; t < meta_.tp; ++t) {
      auto f = std::make_unique<SafetensorsFile>((fs::path(dir_) / model_shard_file(t, p)).string());
      for (const auto& ti : f->tensors()) {
        auto m = f->metadata().find(ti.name);
        LT_CHECK(m != f->metadata().end(), "{}: tensor '{}' has no slice record in the metadata", f->path(), ti.name);
        pieces_[ti.name].push_back(parse_slice(*f, ti.name, m->second, false));
      }
      files_.push_back(std::move(f));
    }
}

Tensor CheckpointSource::get(const std::string& name) const {
  auto it = pieces_.find(name);
  if (it == pieces_.end()) fail("{}: missing tensor '{}'", describe(), name);
  const StoredSlice& s = it->second.front();
  const TensorInfo& t = s.file->at(s.tensor);
  Tensor out;
  out.dtype = t.dtype;
  out.shape = s.global_shape;
  if (s.split_dim == -1 || s.shape == s.global_shape) {  // whole tensor in one file: zero copy
    out.bytes = s.file->bytes(t);
    return out;
  }
  auto bytes = assemble(it->second, t.dtype, describe() + ": tensor '" + name + "'");
  out.bytes = {bytes->data(), bytes->size()};
  out.owner = bytes;
  return out;
}

void CheckpointSource::release(const std::string& name) const {
  auto it = pieces_.find(name);
  if (it == pieces_.end()) return;
  for (const auto& s : it->second) s.file->release(s.file->at(s.tensor));
}

void load_model(const CheckpointRef& ckpt, const ParamLayout& target, float* dst) {
  check_architecture(ckpt, target);
  CheckpointSource src(ckpt);
  load_weights(src, target, dst);
}

void load_optimizer(const CheckpointRef& ckpt, const ParamLayout& target, size_t begin, size_t end, float* master,
                    float* exp_avg, float* exp_avg_sq) {
  check_architecture(ckpt, target);
  const CheckpointMeta& m = ckpt.meta;
  LT_CHECK(m.optim_parts > 0, "checkpoint {} has no optimizer state (converted weights, or saved without it)",
           ckpt.dir);
  LT_CHECK(begin <= end && end <= target.total(), "load_optimizer: range [{}, {}) outside the shard's {} elements",
           begin, end, target.total());
  static const char* kKinds[] = {"master.", "exp_avg.", "exp_avg_sq."};
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::string, std::vector<StoredSlice>> pieces;  // "exp_avg.<name>" -> pieces
  for (int p = 0; p < m.pp; ++p)
    for (int t = 0; t < m.tp; ++t)
      for (int d = 0; d < m.optim_parts; ++d) {
        auto f = std::make_unique<SafetensorsFile>((fs::path(ckpt.dir) / optim_shard_file(t, p, d)).string());
        for (const auto& ti : f->tensors()) {
          std::string param;
          for (const char* k : kKinds)
            if (ti.name.starts_with(k)) param = ti.name.substr(std::strlen(k));
          if (param.empty()) continue;
          auto rec = f->metadata().find(param);
          LT_CHECK(rec != f->metadata().end(), "{}: tensor '{}' has no slice record", f->path(), ti.name);
          pieces[ti.name].push_back(parse_slice(*f, ti.name, rec->second, true));
        }
        files.push_back(std::move(f));
      }
  float* outs[] = {master, exp_avg, exp_avg_sq};
  for (int k = 0; k < 3; ++k) std::memset(outs[k], 0, (end - begin) * sizeof(float));
  for (const auto& p : target.params()) {
    size_t a = std::max(begin, p.offset), b = std::min(end, p.offset + p.numel);
    if (a >= b) continue;
    std::string name = p.name;
    if (p.tied_copy && !pieces.count(std::string("master.") + name)) name = "model.embed_tokens.weight";
    StoredSlice want;  // the target's slice, to map its local elements to global ones
    want.shape = p.shape;
    want.global_shape = p.global_shape;
    want.split_dim = p.split_dim;
    want.split_begin = p.split_begin;
    for (int k = 0; k < 3; ++k) {
      std::string key = kKinds[k] + name;
      auto it = pieces.find(key);
      if (it == pieces.end()) fail("checkpoint {}: no optimizer state '{}'", ckpt.dir, key);
      if (it->second.front().global_shape != p.global_shape)
        fail("checkpoint {}: optimizer state '{}' has a different global shape than the target", ckpt.dir, key);
      auto g = assemble(it->second, DType::F32, "checkpoint " + ckpt.dir + ": optimizer state '" + key + "'");
      const float* gf = reinterpret_cast<const float*>(g->data());
      // Local element li of p is flat element p.offset + li, at out[p.offset + li - begin].
      for_each_run(want, a - p.offset, b - p.offset, [&](size_t li, size_t gi, size_t n) {
        std::memcpy(outs[k] + (p.offset + li - begin), gf + gi, n * sizeof(float));
      });
    }
  }
}

}  // namespace lt
