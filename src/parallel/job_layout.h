// The seed's job vocabulary: processes per node, nodes, tp, pp, global batch size, micro-batch
// size, sequence length; and what follows from it. For the seed's 70B run:
//   world = 32 procs/node x 32 nodes = 1024, dp = world / (tp 8 x pp 8) = 16,
//   per-replica batch = gbs 512 / dp 16 = 32 sequences, micro-batches = 32 / mbs 1 = 32.
// A combination that does not divide is an error naming the numbers and values that work.
#pragma once
#include <string>
#include <vector>

#include "model/config.h"

namespace lt {

struct JobShape {
  int nodes = 1, procs_per_node = 1;  // world = nodes * procs_per_node
  int tp = 1, pp = 1;
  int global_batch = 1;  // sequences per optimizer step, all replicas together
  int micro_batch = 1;   // sequences per forward/backward
  int seq_len = 0;       // tokens per sequence (0: not checked)
};

struct JobLayout {
  int world = 1, tp = 1, pp = 1, dp = 1;
  int global_batch = 1, micro_batch = 1, seq_len = 0;
  int per_replica_batch = 1;  // global_batch / dp
  int micro_batches = 1;      // per_replica_batch / micro_batch (num_microbatches)
  // Idle fraction of the 1F1B schedule: (pp - 1) / (micro_batches + pp - 1).
  double bubble() const { return double(pp - 1) / double(micro_batches + pp - 1); }
  std::vector<std::string> warnings;  // legal but poor choices (a big bubble, ...)
};

// Checks divisibility only. Throws lt::Error naming the numbers and suggesting values.
JobLayout derive_job_layout(const JobShape& s);
// Also checks that tp/pp fit the model (heads, KV heads, MLP width, layers) and seq_len.
JobLayout derive_job_layout(const JobShape& s, const LlamaConfig& c);

}  // namespace lt
