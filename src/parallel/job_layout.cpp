#include "parallel/job_layout.h"

#include <fmt/format.h>

#include "core/error.h"
#include "model/layout.h"

namespace lt {

namespace {
std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
  return s;
}
std::vector<int> divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}
// The multiples of `m` nearest to `x`: the one below (if > 0) and the one above.
std::string nearest_multiples(int x, int m) {
  int lo = x / m * m, hi = lo + m;
  return lo > 0 ? fmt::format("{} or {}", lo, hi) : std::to_string(hi);
}
}  // namespace

JobLayout derive_job_layout(const JobShape& s) {
  LT_CHECK(s.nodes >= 1 && s.procs_per_node >= 1, "job: nodes = {} and procs_per_node = {} must be >= 1", s.nodes,
           s.procs_per_node);
  LT_CHECK(s.tp >= 1 && s.pp >= 1, "job: tp = {} and pp = {} must be >= 1", s.tp, s.pp);
  LT_CHECK(s.global_batch >= 1 && s.micro_batch >= 1, "job: global batch size = {} and micro-batch size = {} must be >= 1",
           s.global_batch, s.micro_batch);
  LT_CHECK(s.seq_len >= 0, "job: seq_len = {} must be >= 1", s.seq_len);
  JobLayout l;
  l.world = s.nodes * s.procs_per_node;
  l.tp = s.tp;
  l.pp = s.pp;
  l.global_batch = s.global_batch;
  l.micro_batch = s.micro_batch;
  l.seq_len = s.seq_len;
  const int mp = s.tp * s.pp;
  if (l.world % mp != 0) {
    std::vector<int> tps, pps;
    for (int d : divisors(l.world)) {
      if (d % s.pp == 0) tps.push_back(d / s.pp);
      if (d % s.tp == 0) pps.push_back(d / s.tp);
    }
    std::string alt;
    if (!tps.empty()) alt += fmt::format(", or with pp = {} a tp in {{{}}}", s.pp, join(tps));
    if (!pps.empty()) alt += fmt::format(", or with tp = {} a pp in {{{}}}", s.tp, join(pps));
    fail("job: world size {} ({} nodes x {} processes per node) is not a multiple of tp x pp = {} x {} = {}, so "
         "data parallelism would not be whole. Use a world size that is a multiple of {} (e.g. {} processes){}",
         l.world, s.nodes, s.procs_per_node, s.tp, s.pp, mp, mp, nearest_multiples(l.world, mp), alt);
  }
  l.dp = l.world / mp;
  const int unit = l.dp * s.micro_batch;  // the global batch must be a multiple of this
  if (s.global_batch % l.dp != 0)
    fail("job: global batch size {} is not divisible by dp = {} (= {} ranks / (tp {} x pp {})): each replica needs "
         "a whole number of sequences. Global batch sizes that work with micro-batch {}: {} (multiples of dp x mbs "
         "= {})",
         s.global_batch, l.dp, l.world, s.tp, s.pp, s.micro_batch, nearest_multiples(s.global_batch, unit), unit);
  l.per_replica_batch = s.global_batch / l.dp;
  if (l.per_replica_batch % s.micro_batch != 0)
    fail("job: per-replica batch {} (= global batch {} / dp {}) is not a multiple of micro-batch size {}. Micro-batch "
         "sizes that divide it: {}; or global batch {} (multiples of dp x mbs = {})",
         l.per_replica_batch, s.global_batch, l.dp, s.micro_batch, join(divisors(l.per_replica_batch)),
         nearest_multiples(s.global_batch, unit), unit);
  l.micro_batches = l.per_replica_batch / s.micro_batch;
  if (s.pp > 1 && l.micro_batches < s.pp)
    l.warnings.push_back(fmt::format(
        "{} micro-batches per step with pp = {}: the pipeline never fills (bubble {:.0f}%); use at least {} "
        "micro-batches (a larger global batch or a smaller micro-batch)",
        l.micro_batches, s.pp, 100.0 * l.bubble(), 4 * s.pp));
  else if (s.pp > 1 && l.bubble() > 0.25)
    l.warnings.push_back(fmt::format("pipeline bubble {:.0f}% with {} micro-batches over pp = {}; 4 x pp = {} "
                                     "micro-batches would bring it to {:.0f}%",
                                     100.0 * l.bubble(), l.micro_batches, s.pp, 4 * s.pp,
                                     100.0 * double(s.pp - 1) / double(5 * s.pp - 1)));
  return l;
}

JobLayout derive_job_layout(const JobShape& s, const LlamaConfig& c) {
  c.validate();
  ShardSpec spec;
  spec.tp = s.tp;
  spec.pp = s.pp;
  validate_shard(c, spec);
  JobLayout l = derive_job_layout(s);
  LT_CHECK(s.seq_len <= c.max_seq_len,
           "job: seq_len = {} exceeds {}'s max_position_embeddings = {}", s.seq_len, c.name, c.max_seq_len);
  return l;
}

}  // namespace lt
