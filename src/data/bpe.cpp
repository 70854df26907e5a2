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
constexpr size_t kCacheMaxWords = 1 << 18;
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
  pairs_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r)
    pairs_.emplace(key(merges[r].left, merges[r].right), PairInfo{merges[r].rank >= 0 ? merges[r].rank : int32_t(r), merges[r].merged});
  instance_ = ++g_instances;
}

int32_t BpeEngine::lookup(std::string_view piece) const {
  auto it = ids_.find(std::string(piece));
  return it == ids_.end() ? -1 : it->second;
}

const BpeEngine::PairInfo* BpeEngine::find_pair(int32_t a, int32_t b) const {
  auto it = pairs_.find(key(a, b));
  return it == pairs_.end() ? nullptr : &it->second;
}

void BpeEngine::encode(std::string_view s, std::vector<int32_t>& out) const {
  if (!word_split_) {
    encode_word(s, out);
    return;
  }
  ThreadCache& cache = t_cache;
  if (cache.owner != instance_) {
    cache.words.clear();
    cache.owner = instance_;
  }
  size_t start = 0, i = 0;
  bool prev_space = true;  // a word starts at a ▁ that follows a non-▁ character
  auto flush = [&](size_t end) {
    if (end == start) return;
    std::string_view w = s.substr(start, end - start);
    if (w.size() > kCacheMaxWordBytes) {
      encode_word(w, out);
    } else if (auto it = cache.words.find(w); it != cache.words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
    } else {
      size_t before = out.size();
      encode_word(w, out);
      if (cache.words.size() >= kCacheMaxWords) cache.words.clear();
      cache.words.emplace(std::string(w), std::vector<int32_t>(out.begin() + long(before), out.end()));
    }
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

void BpeEngine::encode_word(std::string_view w, std::vector<int32_t>& out) const {
  std::vector<int32_t> syms;
  syms.reserve(w.size());
  size_t i = 0;
  while (i < w.size()) {
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
  if (syms.size() <= 48) merge_small(syms);
  else merge_large(syms);
  out.insert(out.end(), syms.begin(), syms.end());
}

void BpeEngine::merge_small(std::vector<int32_t>& s) const {
  for (;;) {
    int32_t best_rank = INT32_MAX, best_merged = -1;
    size_t best = 0;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const PairInfo* p = find_pair(s[i], s[i + 1]);
      if (p && p->rank < best_rank) best_rank = p->rank, best_merged = p->merged, best = i;
    }
    if (best_merged < 0) return;
    s[best] = best_merged;
    s.erase(s.begin() + long(best) + 1);
  }
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
