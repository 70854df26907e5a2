#include "data/bpe.h"

#include <atomic>
#include <queue>

#include "core/error.h"
#include "data/utf8.h"

namespace lt::data {

namespace {

constexpr std::string_view kSpace = "\xe2\x96\x81";  // ▁ U+2581

bool is_space_at(std::string_view s, size_t i) { return s.compare(i, 3, kSpace) == 0; }

// True when `p` is ▁*[^▁]*: then no piece spans the start of a word.
bool word_shaped(std::string_view p) {
  size_t i = 0;
  while (i + 3 <= p.size() && is_space_at(p, i)) i += 3;
  return p.find(kSpace, i) == std::string_view::npos;
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using WordCache = std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>>;

struct ThreadCache {
  uint64_t owner = 0;
  WordCache words;
};
thread_local ThreadCache t_cache;
constexpr size_t kCacheMaxWords = 1 << 16;  // ~10 MB per thread; cleared when full
constexpr size_t kCacheMaxWordBytes = 96;
std::atomic<uint64_t> g_instances{0};

}  // namespace

void BpeEngine::init(std::vector<std::string> pieces, const std::vector<BpeMerge>& merges,
                     const std::vector<int32_t>& byte_ids, int32_t unk_id) {
  pieces_ = std::move(pieces);
  byte_ids_ = byte_ids;
  byte_ids_.resize(256, -1);
  unk_id_ = unk_id;
  ids_.clear();
  char_ids_.clear();
  pairs_.clear();
  word_split_ = true;
  for (size_t id = 0; id < pieces_.size(); ++id) {
    const std::string& p = pieces_[id];
    ids_.emplace(p, int32_t(id));
    if (!p.empty()) {
      size_t n = utf8_seq_len(p, 0);
      if (n == p.size()) char_ids_.emplace(utf8_decode(p, 0, n), int32_t(id));
    }
    if (!word_shaped(p)) word_split_ = false;
  }
  size_t cap = 16;
  while (cap < merges.size() * 2) cap *= 2;
  pairs_.assign(cap, PairSlot{});
  pair_mask_ = cap - 1;
  for (size_t r = 0; r < merges.size(); ++r) {
    uint64_t k = key(merges[r].left, merges[r].right);
    PairInfo info{merges[r].rank >= 0 ? merges[r].rank : int32_t(r), merges[r].merged};
    for (uint64_t h = (k * 0x9e3779b97f4a7c15ull) >> 20;; ++h) {
      PairSlot& s = pairs_[h & pair_mask_];
      if (s.key == k) break;  // a duplicate merge: the first (best) one wins
      if (s.key == ~0ull) {
        s = PairSlot{k, info};
        break;
      }
    }
  }
  for (int c = 0; c < 128; ++c) {
    auto it = char_ids_.find(uint32_t(c));
    ascii_ids_[c] = it == char_ids_.end() ? -1 : it->second;
  }
  instance_ = ++g_instances;
}

int32_t BpeEngine::lookup(std::string_view piece) const {
  auto it = ids_.find(std::string(piece));
  return it == ids_.end() ? -1 : it->second;
}

const BpeEngine::PairInfo* BpeEngine::find_pair(int32_t a, int32_t b) const {
  const uint64_t k = key(a, b);
  for (uint64_t h = (k * 0x9e3779b97f4a7c15ull) >> 20;; ++h) {
    const PairSlot& s = pairs_[h & pair_mask_];
    if (s.key == k) return &s.info;
    if (s.key == ~0ull) return nullptr;
  }
}

void BpeEngine::encode(std::string_view s, std::vector<int32_t>& out) const {
  if (!word_split_) {
    encode_word(s, out);
    return;
  }
  size_t start = 0, i = 0;
  bool prev_space = true;  // a word starts at a ▁ that follows a non-▁ character
  auto encode = [](const void* self, std::string_view w, std::vector<int32_t>& o) {
    static_cast<const BpeEngine*>(self)->encode_word(w, o);
  };
  auto flush = [&](size_t end) {
    if (end == start) return;
    encode_memoized(s.substr(start, end - start), out, encode, this);
    start = end;
  };
  while (i < s.size()) {
    if (is_space_at(s, i)) {
      if (!prev_space) flush(i);
      prev_space = true;
      i += 3;
    } else {
      prev_space = false;
      ++i;
    }
  }
  flush(s.size());
}

void BpeEngine::encode_memoized(std::string_view w, std::vector<int32_t>& out, WordEncoder encode,
                                const void* ctx) const {
  if (w.size() > kCacheMaxWordBytes) {
    encode(ctx, w, out);
    return;
  }
  ThreadCache& cache = t_cache;
  if (cache.owner != instance_) {
    cache.words.clear();
    cache.owner = instance_;
  }
  if (auto it = cache.words.find(w); it != cache.words.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  size_t before = out.size();
  encode(ctx, w, out);
  if (cache.words.size() >= kCacheMaxWords) cache.words.clear();
  cache.words.emplace(std::string(w), std::vector<int32_t>(out.begin() + long(before), out.end()));
}

void BpeEngine::encode_word(std::string_view w, std::vector<int32_t>& out) const {
  std::vector<int32_t> syms;
  syms.reserve(w.size());
  size_t i = 0;
  while (i < w.size()) {
    if (uint8_t(w[i]) < 0x80 && ascii_ids_[uint8_t(w[i])] >= 0) {
      syms.push_back(ascii_ids_[uint8_t(w[i])]);
      ++i;
      continue;
    }
    size_t n = utf8_seq_len(w, i);
    int32_t id = -1;
    if (n > 0) {
      auto it = char_ids_.find(utf8_decode(w, i, n));
      if (it != char_ids_.end()) id = it->second;
    } else {
      n = 1;  // an invalid byte: byte fallback handles it like any unknown character
    }
    if (id >= 0) {
      syms.push_back(id);
    } else {
      for (size_t k = 0; k < n; ++k) {
        int32_t b = byte_ids_[uint8_t(w[i + k])];
        if (b >= 0) syms.push_back(b);
        else if (syms.empty() || syms.back() != unk_id_) syms.push_back(unk_id_);  // fuse unknowns
      }
    }
    i += n;
  }
  merge(syms);
  out.insert(out.end(), syms.begin(), syms.end());
}

// Short words: keep each adjacent pair's rank in an array; after a merge only the two
// neighbouring pairs change.
void BpeEngine::merge_small(std::vector<int32_t>& s) const {
  if (s.size() < 2) return;
  int32_t rank[64];
  auto rank_of = [&](size_t i) {
    const PairInfo* p = find_pair(s[i], s[i + 1]);
    return p ? p->rank : INT32_MAX;
  };
  size_t n = s.size();
  for (size_t i = 0; i + 1 < n; ++i) rank[i] = rank_of(i);
  for (;;) {
    int32_t best_rank = INT32_MAX;
    size_t best = 0;
    for (size_t i = 0; i + 1 < n; ++i)
      if (rank[i] < best_rank) best_rank = rank[i], best = i;
    if (best_rank == INT32_MAX) break;
    s[best] = find_pair(s[best], s[best + 1])->merged;
    for (size_t i = best + 1; i + 1 < n; ++i) s[i] = s[i + 1];
    for (size_t i = best + 1; i + 2 < n; ++i) rank[i] = rank[i + 1];
    --n;
    if (best > 0) rank[best - 1] = rank_of(best - 1);
    if (best + 1 < n) rank[best] = rank_of(best);
  }
  s.resize(n);
}

// The same greedy order in O(n log n): a doubly linked list of symbols and a heap of candidate
// pairs keyed by (rank, position); stale heap entries are skipped when popped.
void BpeEngine::merge_large(std::vector<int32_t>& s) const {
  const int n = int(s.size());
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
  struct Cand {
    int32_t rank;
    int pos;
    int32_t left, right;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    if (const PairInfo* p = find_pair(s[pos], s[next[pos]])) heap.push({p->rank, pos, s[pos], s[next[pos]]});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  std::vector<char> alive(n, 1);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    int r = next[c.pos];
    if (!alive[c.pos] || r < 0 || s[c.pos] != c.left || s[r] != c.right) continue;
    s[c.pos] = find_pair(c.left, c.right)->merged;
    alive[r] = 0;
    next[c.pos] = next[r];
    if (next[r] >= 0) prev[next[r]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  std::vector<int32_t> merged;
  for (int i = 0; i >= 0 && i < n; i = next[i]) merged.push_back(s[i]);
  s = std::move(merged);
}

}  // namespace lt::data
