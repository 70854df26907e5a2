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

// Views any tensor as 2-D [rows, cols] (1-D: cols = 1) and a slice as a row/col offset.
struct Geometry {
  int64_t cols, row_off, col_off;
};
Geometry geometry(const StoredSlice& s) {
  Geometry g{s.shape.size() > 1 ? s.shape[1] : 1, 0, 0};
  if (s.split_dim == 0) g.row_off = s.split_begin;
  if (s.split_dim == 1) g.col_off = s.split_begin;
  return g;
}

// Fills elements [ta, tb) of the flattened local tensor `want` (a slice of the same global
// tensor as the pieces) into `dst` as `dst_dtype`, copying straight from every piece that
// overlaps: only the rows both hold are visited, so a rank reads its own share, not the whole
// tensor. Pieces that repeat the same slice (replicated norms, KV heads shared by tp ranks)
// are used once; every wanted element must be covered.
void gather_slice(const std::vector<StoredSlice>& pieces, const StoredSlice& want, size_t ta, size_t tb,
                  DType dst_dtype, void* dst, const std::string& what) {
  if (ta >= tb) return;
  const Geometry tg = geometry(want);
  const int64_t t_row0 = int64_t(ta) / tg.cols, t_row1 = (int64_t(tb) + tg.cols - 1) / tg.cols;
  const size_t ds = dtype_size(dst_dtype);
  auto* out = static_cast<uint8_t*>(dst);
  // Replicated data may be stored several times, cut differently by each rank's ZeRO-1
  // ranges, so coverage is tracked per element rather than counted.
  std::vector<uint8_t> covered(tb - ta, 0);
  std::vector<const StoredSlice*> seen;
  for (const auto& s : pieces) {
    if (s.global_shape != want.global_shape)
      fail("{}: {} stores global shape {}, expected {}", what, s.file->path(), json(s.global_shape).dump(),
           json(want.global_shape).dump());
    bool dup = false;
    for (const StoredSlice* o : seen)
      dup |= o->split_dim == s.split_dim && o->split_begin == s.split_begin && o->shape == s.shape &&
             o->begin == s.begin && o->end == s.end;
    if (dup) continue;
    seen.push_back(&s);
    const Geometry sg = geometry(s);
    const TensorInfo& info = s.file->at(s.tensor);
    const uint8_t* src = s.file->bytes(info).data();
    const size_t es = dtype_size(info.dtype);
    const int64_t s_row0 = int64_t(s.begin) / sg.cols, s_row1 = (int64_t(s.end) + sg.cols - 1) / sg.cols;
    // Global rows both hold.
    const int64_t g0 = std::max(s_row0 + sg.row_off, t_row0 + tg.row_off);
    const int64_t g1 = std::min(s_row1 + sg.row_off, t_row1 + tg.row_off);
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t sr = g - sg.row_off, tr = g - tg.row_off;
      // Local column ranges each side holds/wants in this row, in global columns.
      int64_t sc0 = std::max<int64_t>(0, int64_t(s.begin) - sr * sg.cols);
      int64_t sc1 = std::min<int64_t>(sg.cols, int64_t(s.end) - sr * sg.cols);
      int64_t tc0 = std::max<int64_t>(0, int64_t(ta) - tr * tg.cols);
      int64_t tc1 = std::min<int64_t>(tg.cols, int64_t(tb) - tr * tg.cols);
      int64_t c0 = std::max(sc0 + sg.col_off, tc0 + tg.col_off), c1 = std::min(sc1 + sg.col_off, tc1 + tg.col_off);
      if (c0 >= c1) continue;
      size_t n = size_t(c1 - c0);
      size_t si = size_t(sr * sg.cols + (c0 - sg.col_off)) - s.begin;
      size_t ti = size_t(tr * tg.cols + (c0 - tg.col_off)) - ta;
      convert_elements(info.dtype, src + si * es, dst_dtype, out + ti * ds, n);
      std::memset(covered.data() + ti, 1, n);
    }
  }
  auto hole = std::find(covered.begin(), covered.end(), 0);
  if (hole != covered.end())
    fail("{}: element {} of the needed slice is in no stored piece (a missing or inconsistent shard file?)", what,
         size_t(hole - covered.begin()) + ta);
}

void check_architecture(const CheckpointRef& ckpt, const ParamLayout& target) {
  const LlamaConfig &a = ckpt.meta.config, &b = target.config();
  if (!same_architecture(a, b))
    fail("checkpoint {} holds a model with {}, but the target expects {}", ckpt.dir, architecture_summary(a),
         architecture_summary(b));
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
  StoredSlice whole;
  whole.shape = whole.global_shape = s.global_shape;
  auto bytes = std::make_shared<std::vector<uint8_t>>(size_t(product(s.global_shape)) * dtype_size(t.dtype));
  gather_slice(it->second, whole, 0, size_t(product(s.global_shape)), t.dtype, bytes->data(),
               describe() + ": tensor '" + name + "'");
  out.bytes = {bytes->data(), bytes->size()};
  out.owner = bytes;
  return out;
}

const std::vector<StoredSlice>& CheckpointSource::pieces(const std::string& name) const {
  auto it = pieces_.find(name);
  if (it == pieces_.end()) fail("{}: missing tensor '{}'", describe(), name);
  return it->second;
}

void CheckpointSource::release(const std::string& name) const {
  auto it = pieces_.find(name);
  if (it == pieces_.end()) return;
  for (const auto& s : it->second) s.file->release(s.file->at(s.tensor));
}

StoredSlice target_slice(const ParamInfo& p) {
  StoredSlice t;
  t.shape = p.shape;
  t.global_shape = p.global_shape;
  t.split_dim = p.split_dim;
  t.split_begin = p.split_begin;
  t.begin = 0;
  t.end = p.numel;
  return t;
}

void load_model(const CheckpointRef& ckpt, const ParamLayout& target, FlatAccess& dst) {
  check_architecture(ckpt, target);
  CheckpointSource src(ckpt);
  for (const auto& p : target.params()) {
    std::string name = source_name(src, p);
    float* d = dst.write(p.offset, p.numel);
    std::memset(d, 0, p.numel * sizeof(float));
    gather_slice(src.pieces(name), target_slice(p), 0, p.numel, DType::F32, d,
                 src.describe() + ": tensor '" + name + "'");
  }
  dst.flush();
}

void load_model(const CheckpointRef& ckpt, const ParamLayout& target, float* dst) {
  std::memset(dst, 0, target.total() * sizeof(float));
  HostFlat d(dst, target.total());
  load_model(ckpt, target, d);
}

void load_optimizer(const CheckpointRef& ckpt, const ParamLayout& target, size_t begin, size_t end, float* master,
                    float* exp_avg, float* exp_avg_sq) {
  float* outs[] = {master, exp_avg, exp_avg_sq};
  for (float* o : outs) std::memset(o, 0, (end - begin) * sizeof(float));
  HostFlat m(master, end - begin), a(exp_avg, end - begin), b(exp_avg_sq, end - begin);
  load_optimizer(ckpt, target, begin, end, m, a, b);
}

void load_optimizer(const CheckpointRef& ckpt, const ParamLayout& target, size_t begin, size_t end,
                    FlatAccess& master, FlatAccess& exp_avg, FlatAccess& exp_avg_sq) {
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
  FlatAccess* outs[] = {&master, &exp_avg, &exp_avg_sq};
  for (const auto& p : target.params()) {
    size_t a = std::max(begin, p.offset), b = std::min(end, p.offset + p.numel);
    if (a >= b) continue;
    std::string name = p.name;
    if (p.tied_copy && !pieces.count(std::string("master.") + name)) name = "model.embed_tokens.weight";
    for (int k = 0; k < 3; ++k) {
      std::string key = kKinds[k] + name;
      auto it = pieces.find(key);
      if (it == pieces.end()) fail("checkpoint {}: no optimizer state '{}'", ckpt.dir, key);
      // Local elements [a', b') of p are flat elements [a, b), at outs[k][a - begin].
      float* d = outs[k]->write(a - begin, b - a);
      std::memset(d, 0, (b - a) * sizeof(float));
      gather_slice(it->second, target_slice(p), a - p.offset, b - p.offset, DType::F32, d,
                   "checkpoint " + ckpt.dir + ": optimizer state '" + key + "'");
    }
  }
  for (FlatAccess* o : outs) o->flush();
}

}  // namespace lt
