#include "parallel/pipeline_program.h"

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include "core/error.h"

namespace lt {

namespace {

int pmod(int a, int b) { return ((a % b) + b) % b; }

struct Shape {
  int P, v, M;
  int total() const { return M * v; }
  // Megatron's get_model_chunk_id (Python's modulo: negative k wraps).
  int chunk_f(int k) const { return pmod(k, P * v) / P; }
  int chunk_b(int k) const { return v - 1 - chunk_f(k); }
  int mb(int k) const { return (k / (P * v)) * P + k % P; }
  ChunkMb fwd(int k) const { return {chunk_f(k), mb(k)}; }
  ChunkMb bwd(int k) const { return {chunk_b(k), mb(k)}; }
};

constexpr ChunkMb kPending{-2, -2};  // a receive whose content the sender's program fills in

// One rank's steps with receive flags (kPending), Megatron's rules.
std::vector<PipeStep> rank_steps(const Shape& s, int r) {
  const int P = s.P, v = s.v, total = s.total();
  auto first_virtual = [&](int c) { return r == 0 && c == 0; };
  auto last_virtual = [&](int c) { return r == P - 1 && c == v - 1; };
  const int warmup = s.M == P ? total : std::min(total, (P - r - 1) * 2 + (v - 1) * P);
  const int remaining = total - warmup;
  std::vector<PipeStep> steps;
  if (r > 0) steps.push_back({.recv_forward = kPending});
  for (int k = 0; k < warmup; ++k) {
    PipeStep st;
    st.forward = s.fwd(k);
    if (!last_virtual(st.forward.chunk)) st.send_forward = st.forward;
    if (!(r == 0 && s.chunk_f(k + 1) == 0) && k != total - 1) st.recv_forward = kPending;
    if (k == warmup - 1 && remaining > 0 && r != P - 1) st.recv_backward = kPending;
    steps.push_back(st);
  }
  for (int j = 0; j < remaining; ++j) {
    const int kf = j + warmup, kb = j;
    PipeStep st;
    st.forward = s.fwd(kf);
    st.backward = s.bwd(kb);
    if (!last_virtual(st.forward.chunk)) st.send_forward = st.forward;
    if (!first_virtual(st.backward.chunk)) st.send_backward = st.backward;
    // The first rank is P−1 forwards ahead of the last one: it receives what the last rank
    // just ran, unless that was the last chunk. The mirror image for gradients.
    bool recv_prev = r == 0 ? s.chunk_f(kf - (P - 1)) != v - 1 : true;
    const bool recv_next = r == P - 1 ? s.chunk_b(kb - (P - 1)) != 0 : true;
    if (j == remaining - 1) recv_prev = false;
    if (recv_prev) st.recv_forward = kPending;
    if (recv_next) st.recv_backward = kPending;
    steps.push_back(st);
  }
  if (remaining == 0 && r != P - 1) steps.push_back({.recv_backward = kPending});
  for (int k = remaining; k < total; ++k) {
    PipeStep st;
    st.backward = s.bwd(k);
    if (!first_virtual(st.backward.chunk)) st.send_backward = st.backward;
    if (!(r == P - 1 && s.chunk_b(k + 1) == v - 1) && k != total - 1) st.recv_backward = kPending;
    steps.push_back(st);
  }
  return steps;
}

// Fills each rank's pending receives, in order, with what its neighbour sends it.
void fill_receives(std::vector<PipeProgram>& progs, int P, int v) {
  for (int r = 0; r < P; ++r) {
    const int next = (r + 1) % P, prev = (r + P - 1) % P;
    std::deque<ChunkMb> fwd, bwd;
    for (const PipeStep& st : progs[size_t(r)].steps) {
      if (st.send_forward) fwd.push_back({st.send_forward.chunk + (r == P - 1 ? 1 : 0), st.send_forward.mb});
      if (st.send_backward) bwd.push_back({st.send_backward.chunk - (r == 0 ? 1 : 0), st.send_backward.mb});
    }
    for (PipeStep& st : progs[size_t(next)].steps)
      if (st.recv_forward == kPending) {
        LT_CHECK(!fwd.empty(), "pipeline program: rank {} expects more activations than rank {} sends", next, r);
        st.recv_forward = fwd.front();
        fwd.pop_front();
      }
    for (PipeStep& st : progs[size_t(prev)].steps)
      if (st.recv_backward == kPending) {
        LT_CHECK(!bwd.empty(), "pipeline program: rank {} expects more gradients than rank {} sends", prev, r);
        st.recv_backward = bwd.front();
        bwd.pop_front();
      }
    LT_CHECK(fwd.empty() && bwd.empty(), "pipeline program: rank {} sends messages nobody receives", r);
  }
  (void)v;
}

// Activation slots: taken when a chunk's input is received (or by the forward of virtual stage
// 0, which reads tokens), given back after the backward.
void assign_slots(PipeProgram& prog, int r, int v) {
  std::vector<std::vector<int>> free(static_cast<size_t>(v));
  std::vector<int> used(size_t(v), 0);
  prog.slots.assign(size_t(v), 0);
  std::map<std::pair<int, int>, int> slot_of;
  auto take = [&](ChunkMb x) {
    auto& f = free[size_t(x.chunk)];
    int s;
    if (f.empty()) {
      s = used[size_t(x.chunk)]++;
      prog.slots[size_t(x.chunk)] = used[size_t(x.chunk)];
    } else {
      s = *std::min_element(f.begin(), f.end());
      f.erase(std::find(f.begin(), f.end(), s));
    }
    slot_of[{x.chunk, x.mb}] = s;
    return s;
  };
  auto find = [&](ChunkMb x, const char* what) {
    auto it = slot_of.find({x.chunk, x.mb});
    LT_CHECK(it != slot_of.end(), "pipeline program: rank {} runs the {} of chunk {} micro-batch {} before its input",
             r, what, x.chunk, x.mb);
    return it->second;
  };
  for (PipeStep& st : prog.steps) {
    if (st.forward) st.forward_slot = r == 0 && st.forward.chunk == 0 ? take(st.forward) : find(st.forward, "forward");
    if (st.backward) {
      st.backward_slot = find(st.backward, "backward");
      free[size_t(st.backward.chunk)].push_back(st.backward_slot);
      slot_of.erase({st.backward.chunk, st.backward.mb});
    }
    if (st.recv_forward) st.recv_slot = take(st.recv_forward);
    if (st.recv_backward) st.recv_grad_slot = find(st.recv_backward, "gradient receive");
  }
}

}  // namespace

std::vector<PipeProgram> interleaved_programs(int P, int v, int M) {
  LT_CHECK(P >= 1 && v >= 1 && M >= 1, "pipeline: bad schedule shape P={} v={} M={}", P, v, M);
  if (v > 1) {
    LT_CHECK(P >= 2, "parallel.virtual_stages = {} needs parallel.pp >= 2", v);
    LT_CHECK(M % P == 0,
             "parallel.virtual_stages = {}: the micro-batches per replica ({}) must be a multiple of parallel.pp = {} "
             "(change train.global_batch_size or train.micro_batch_size)",
             v, M, P);
  }
  const Shape s{P, v, M};
  std::vector<PipeProgram> progs(static_cast<size_t>(P));
  for (int r = 0; r < P; ++r) progs[size_t(r)].steps = rank_steps(s, r);
  fill_receives(progs, P, v);
  for (int r = 0; r < P; ++r) assign_slots(progs[size_t(r)], r, v);
  return progs;
}

int check_programs(const std::vector<PipeProgram>& progs, int P, int v, int M) {
  struct Rank {
    size_t pc = 0;
    bool posted = false;
    std::set<std::pair<int, int>> inputs, grads, forwarded, backwarded;
  };
  std::vector<Rank> ranks(static_cast<size_t>(P));
  // Posted, unmatched operations per directed link and direction: sends (content as the
  // receiver names it) and receives.
  struct Link {
    std::deque<ChunkMb> sends, recvs;
    int matched_sends = 0, matched_recvs = 0, posted_sends = 0, posted_recvs = 0;
  };
  std::map<std::tuple<int, int, int>, Link> links;  // (src, dst, dir)
  // Each posted op remembers its index on its link; it is done once the link matched that many.
  struct Op {
    std::tuple<int, int, int> link;
    bool send;
    int index;
  };
  std::vector<std::vector<Op>> pending(static_cast<size_t>(P));
  auto match = [&](Link& l, int src, int dst) {
    while (!l.sends.empty() && !l.recvs.empty()) {
      LT_CHECK(l.sends.front() == l.recvs.front(),
               "pipeline program: rank {} sends chunk {} micro-batch {} to rank {}, which receives chunk {} micro-batch {}",
               src, l.sends.front().chunk, l.sends.front().mb, dst, l.recvs.front().chunk, l.recvs.front().mb);
      l.sends.pop_front();
      l.recvs.pop_front();
      ++l.matched_sends;
      ++l.matched_recvs;
    }
  };
  int rounds = 0;
  for (bool progress = true; progress; ++rounds) {
    progress = false;
    for (int r = 0; r < P; ++r) {
      Rank& k = ranks[size_t(r)];
      const auto& steps = progs[size_t(r)].steps;
      if (k.pc >= steps.size()) continue;
      const PipeStep& st = steps[k.pc];
      const int next = (r + 1) % P, prev = (r + P - 1) % P;
      if (!k.posted) {
        if (st.forward) {
          const auto key = std::pair{st.forward.chunk, st.forward.mb};
          LT_CHECK((r == 0 && st.forward.chunk == 0) || k.inputs.count(key),
                   "pipeline program: rank {} step {} runs the forward of chunk {} micro-batch {} before its input",
                   r, k.pc, key.first, key.second);
          LT_CHECK(k.forwarded.insert(key).second, "pipeline program: rank {} runs a forward twice", r);
        }
        if (st.backward) {
          const auto key = std::pair{st.backward.chunk, st.backward.mb};
          LT_CHECK(k.forwarded.count(key), "pipeline program: rank {} runs a backward before its forward", r);
          LT_CHECK((r == P - 1 && st.backward.chunk == v - 1) || k.grads.count(key),
                   "pipeline program: rank {} step {} runs the backward of chunk {} micro-batch {} before its gradient",
                   r, k.pc, key.first, key.second);
          LT_CHECK(k.backwarded.insert(key).second, "pipeline program: rank {} runs a backward twice", r);
        }
        auto post = [&](int src, int dst, int dir, bool send, ChunkMb content) {
          Link& l = links[{src, dst, dir}];
          (send ? l.sends : l.recvs).push_back(content);
          pending[size_t(r)].push_back({{src, dst, dir}, send, send ? l.posted_sends++ : l.posted_recvs++});
          match(l, src, dst);
        };
        if (st.send_forward)
          post(r, next, 0, true, {st.send_forward.chunk + (r == P - 1 ? 1 : 0), st.send_forward.mb});
        if (st.send_backward)
          post(r, prev, 1, true, {st.send_backward.chunk - (r == 0 ? 1 : 0), st.send_backward.mb});
        if (st.recv_forward) post(prev, r, 0, false, st.recv_forward);
        if (st.recv_backward) post(next, r, 1, false, st.recv_backward);
        k.posted = true;
        progress = true;
      }
      bool done = true;
      for (const Op& op : pending[size_t(r)]) {
        const Link& l = links[op.link];
        done = done && op.index < (op.send ? l.matched_sends : l.matched_recvs);
      }
      if (!done) continue;
      pending[size_t(r)].clear();
      if (st.recv_forward) k.inputs.insert({st.recv_forward.chunk, st.recv_forward.mb});
      if (st.recv_backward) k.grads.insert({st.recv_backward.chunk, st.recv_backward.mb});
      k.posted = false;
      ++k.pc;
      progress = true;
    }
  }
  for (int r = 0; r < P; ++r) {
    const Rank& k = ranks[size_t(r)];
    LT_CHECK(k.pc == progs[size_t(r)].steps.size(), "pipeline program: deadlock, rank {} stuck at step {} of {}", r,
             k.pc, progs[size_t(r)].steps.size());
    LT_CHECK(int(k.forwarded.size()) == v * M && int(k.backwarded.size()) == v * M,
             "pipeline program: rank {} ran {} forwards and {} backwards, not {}", r, k.forwarded.size(),
             k.backwarded.size(), v * M);
  }
  return rounds;
}

}  // namespace lt
