// Fault injection inside a rank, for the fault-injection tests (tests/fault/): what the
// launcher's signals (launch/fault.h) cannot do from outside.
//   LT_FAULT_EXIT_AT_STEP="5"  after finishing step 5, rank LT_FAULT_RANK (default 0) exits
//                              with status 3 on its own, without finalising MPI (as a rank
//                              that hits an error does); once per process.
#pragma once
#include <cstdint>

namespace lt {

// Called by the trainer after each step.
void fault_exit_after_step(int64_t step, int world_rank);

}  // namespace lt
