// Comm benchmark (run under mpirun): all-reduce bus bandwidth of MpiComm's deterministic
// rank-order sum against OpenMPI's own MPI_Allreduce, and whether MPI_Allreduce's result
// equals the rank-order fold bit for bit (it need not: that is why MpiComm has its own).
//   mpirun -np 4 build/bench/comm_bench [max_mib]
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "core/timer.h"
#include "parallel/runtime.h"

int main(int argc, char** argv) {
  lt::Runtime rt;
  lt::Comm& w = rt.world();
  const int p = w.size(), r = w.rank();
  const double max_mib = argc > 1 ? std::atof(argv[1]) : 32;
  if (r == 0)
    std::printf("%d ranks on %s; bus bandwidth = 2(p-1)/p x bytes / time\n%10s %14s %14s %12s %16s\n", p,
                rt.host().c_str(), "bytes", "lt GB/s", "MPI GB/s", "MPI == fold", "MPI same on all");
  for (size_t bytes = 4096; bytes <= size_t(max_mib * 1024 * 1024); bytes *= 8) {
    const size_t n = bytes / 4;
    lt::Rng rng(100 + r);
    std::vector<float> x(n), a(n), b(n);
    for (auto& v : x) v = rng.normal() * float(1 << rng.below(16));
    auto time_it = [&](auto&& fn) {
      a = x;
      lt::Timer warm;
      fn();  // warm-up, which also sizes the repetitions: the same count on every rank
      double once = warm.seconds();
      w.all_reduce_max(&once, 1);
      const int reps = std::max(3, std::min(1000, int(0.3 / std::max(once, 1e-6))));
      w.barrier();
      lt::Timer t;
      for (int k = 0; k < reps; ++k) {
        a = x;
        fn();
      }
      double s = t.seconds() / reps;
      return 2.0 * (p - 1) / p * double(bytes) / s / 1e9;
    };
    double lt_bw = time_it([&] { w.all_reduce_sum(a.data(), n); });
    b = a;  // the rank-order fold of x
    double mpi_bw = time_it([&] { MPI_Allreduce(MPI_IN_PLACE, a.data(), int(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); });
    int same = std::memcmp(a.data(), b.data(), bytes) == 0, all_same = 0;
    MPI_Allreduce(&same, &all_same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    // Does MPI_Allreduce give every rank the same bits? Compare with rank 0's result.
    std::vector<float> r0 = a;
    MPI_Bcast(r0.data(), int(n), MPI_FLOAT, 0, MPI_COMM_WORLD);
    int agree = std::memcmp(a.data(), r0.data(), bytes) == 0, all_agree = 0;
    MPI_Allreduce(&agree, &all_agree, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (r == 0)
      std::printf("%10zu %14.3f %14.3f %12s %16s\n", bytes, lt_bw, mpi_bw, all_same ? "yes" : "no",
                  all_agree ? "yes" : "no");
  }
  return 0;
}
