// Causal attention kernels, fp32 vs bf16 compute: GFLOP/s of forward and backward.
//   attn_bench [B T H KV hd] [reps] [doc_len]   (default: the stories110M shape 8 1024 12 12 64)
// doc_len > 0: document masking (train.document_mask) with documents of doc_len tokens packed
// in each row (the first one starting mid-document), so whole key tiles are skipped.
// FLOPs count the matmuls only, over the (query, key) pairs the mask allows: forward 2 (QKᵀ,
// PV), backward 5 (QKᵀ recomputed, dO·Vᵀ, dV, dK, dQ), each 2·hd per pair.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/attention.h"

using namespace lt::cpu;

int main(int argc, char** argv) {
  AttnShape s{8, 1024, 12, 12, 64};
  if (argc >= 6) s = {std::atoi(argv[1]), std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[4]), std::atoi(argv[5])};
  const int reps = argc >= 7 ? std::atoi(argv[6]) : 3;
  const int doc_len = argc >= 8 ? std::atoi(argv[7]) : 0;
  std::vector<int32_t> docs;
  double pairs = 0;
  if (doc_len > 0) {
    for (int b = 0; b < s.B; ++b)
      for (int t = 0; t < s.T; ++t) {
        const int start = t < doc_len / 2 ? 0 : (t - doc_len / 2) / doc_len * doc_len + doc_len / 2;
        docs.push_back(start);
        pairs += double(t - start + 1) * s.H;
      }
    s.doc_start = docs.data();
  } else {
    pairs = double(s.B) * s.H * (double(s.T) * (s.T + 1) / 2);
  }
  const size_t nq = size_t(s.B) * s.T * s.H * s.hd, nk = size_t(s.B) * s.T * s.KV * s.hd;
  std::mt19937 g(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
  auto rnd = [&](size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
  };
  auto q = rnd(nq), k = rnd(nk), v = rnd(nk), dout = rnd(nq);
  std::vector<float> out(nq), lse(size_t(s.B) * s.H * s.T), dq(nq), dk(nk), dv(nk);
  const double ffwd = 2 * 2.0 * s.hd * pairs, fbwd = 5 * 2.0 * s.hd * pairs;
  auto best = [&](auto&& f) {
    double t = 1e30;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      t = std::min(t, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return t;
  };
  std::printf("B=%d T=%d H=%d KV=%d hd=%d%s, %d threads, best of %d\n", s.B, s.T, s.H, s.KV, s.hd,
              doc_len > 0 ? (", documents of " + std::to_string(doc_len) + " tokens").c_str() : "",
              omp_get_max_threads(), reps);
  for (bool bf : {false, true}) {
    auto fwd = [&] {
      (bf ? attention_forward_bf16 : attention_forward)(q.data(), k.data(), v.data(), out.data(), lse.data(), s);
    };
    auto bwd = [&] {
      (bf ? attention_backward_bf16 : attention_backward)(q.data(), k.data(), v.data(), out.data(), dout.data(),
                                                          lse.data(), dq.data(), dk.data(), dv.data(), s);
    };
    fwd();
    const double tf = best(fwd), tb = best(bwd);
    std::printf("%s  forward %8.2f ms %7.1f GFLOP/s   backward %8.2f ms %7.1f GFLOP/s\n", bf ? "bf16" : "fp32",
                tf * 1e3, ffwd / tf * 1e-9, tb * 1e3, fbwd / tb * 1e-9);
  }
}
