// The MPI world for tests that run under mpirun (tests/parallel/*_test.sh start lt_tests with
// several ranks). Created on first use, finalised after the last test; nullptr when lt_tests
// runs as a plain process, where these tests skip.
#pragma once
#include "parallel/runtime.h"

namespace lt::test {

Runtime* mpi_runtime();

#define LT_REQUIRE_MPI(min_ranks)                                                           \
  do {                                                                                      \
    if (!::lt::test::mpi_runtime() || ::lt::test::mpi_runtime()->world().size() < (min_ranks)) \
      GTEST_SKIP() << "needs mpirun with >= " << (min_ranks) << " ranks";                   \
  } while (0)

}  // namespace lt::test
