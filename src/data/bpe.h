// BpeEngine: byte-fallback BPE over an already-normalised string (spaces are "▁"), shared by the
// tokenizer.json tokenizer and the fast path of the SentencePiece one.
//
// Start from one symbol per UTF-8 character (a character missing from the vocabulary becomes its
// <0xXX> byte pieces, or <unk> without byte fallback), then repeatedly merge the adjacent pair of
// best priority (ties: leftmost) until no pair can merge. Priority is the HF merge rank (lower
// first) or, for SentencePiece models, the merged piece's score (higher first) turned into a rank.
//
// Speed: when every vocabulary piece has the form ▁*[^▁]* (true for Llama), no merge can cross
// the start of a "word" (a run of ▁ then non-▁ characters), so words are encoded independently
// and memoised in a per-thread cache. Otherwise the whole text is one word.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lt::data {

struct BpeMerge {
  int32_t left, right, merged;  // ids
  int32_t rank = -1;            // lower merges first; -1: the entry's index in the list
};

class BpeEngine {
 public:
  BpeEngine() = default;
  // pieces[id] = UTF-8 text of the piece. byte_ids[b] = id of <0xBB> or -1 (no byte fallback).
  void init(std::vector<std::string> pieces, const std::vector<BpeMerge>& merges,
            const std::vector<int32_t>& byte_ids, int32_t unk_id);
  // Appends the ids of `normalized` to out. Thread-safe.
  void encode(std::string_view normalized, std::vector<int32_t>& out) const;
  // Merges the symbol ids `syms` in place, in rank order (the core of encode; byte-level BPE
  // builds its own initial symbols and calls this).
  void merge(std::vector<int32_t>& syms) const {
    if (syms.size() <= 48) merge_small(syms);
    else merge_large(syms);
  }
  // Appends the ids of `word` from the calling thread's memo of this engine's words; on a miss
  // `encode(ctx, word, out)` appends them and they are remembered (words up to 96 bytes).
  using WordEncoder = void (*)(const void* ctx, std::string_view word, std::vector<int32_t>& out);
  void encode_memoized(std::string_view word, std::vector<int32_t>& out, WordEncoder encode, const void* ctx) const;
  const std::string& piece(int32_t id) const { return pieces_[size_t(id)]; }
  int32_t size() const { return int32_t(pieces_.size()); }
  int32_t lookup(std::string_view piece) const;  // -1 when absent
  bool word_cache_enabled() const { return word_split_; }

 private:
  struct PairInfo {
    int32_t rank, merged;
  };
  // Open-addressing table (pair key -> PairInfo): the merge loop's only lookup, kept flat
  // because std::unordered_map's pointer chasing dominated the profile.
  struct PairSlot {
    uint64_t key = ~0ull;  // empty
    PairInfo info{};
  };
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  void merge_small(std::vector<int32_t>& syms) const;
  void merge_large(std::vector<int32_t>& syms) const;
  const PairInfo* find_pair(int32_t a, int32_t b) const;

  std::vector<std::string> pieces_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<uint32_t, int32_t> char_ids_;  // single-codepoint pieces
  std::vector<PairSlot> pairs_;
  uint64_t pair_mask_ = 0;
  int32_t ascii_ids_[128];  // single-byte pieces (-1 when absent)
  std::vector<int32_t> byte_ids_;
  int32_t unk_id_ = 0;
  bool word_split_ = false;
  uint64_t instance_ = 0;  // distinguishes engines in the per-thread cache
};

}  // namespace lt::data
