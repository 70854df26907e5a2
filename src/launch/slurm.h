// Slurm: what an allocation gives `llamatrain launch` (run inside `sbatch` or `salloc`) — its
// nodes, tasks per node and time left — read from Slurm's environment and `squeue`; the
// launcher then starts the health check and the ranks with `srun` on those nodes (job_plan.h),
// leaves failed nodes out of the next step (--nodelist), and stops the ranks with a checkpoint
// --stop-before the allocation's end.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace lt {

struct SlurmAllocation {
  std::string job_id;
  std::vector<std::string> nodes;  // SLURM_JOB_NODELIST, expanded, in Slurm's order
  int tasks_per_node = 0;          // SLURM_NTASKS_PER_NODE, or SLURM_TASKS_PER_NODE when uniform; 0: unknown
  double seconds_left = -1;        // until the allocation's time limit; -1: none or unknown
};

// Slurm's hostlist syntax: "node[01-03,07],gpu-[1-2]" -> node01 node02 node03 node07 gpu-1 gpu-2
// (zero padding kept). Throws naming the text when it is malformed.
std::vector<std::string> expand_hostlist(const std::string& list);
// SLURM_TASKS_PER_NODE: "4(x2),3" -> 4 4 3.
std::vector<int> expand_tasks_per_node(const std::string& text);
// A Slurm duration ("minutes", "minutes:seconds", "hours:minutes:seconds", "days-hours",
// "days-hours:minutes", "days-hours:minutes:seconds", as squeue %L prints time left): seconds;
// "UNLIMITED", "NOT_SET", "INVALID", empty or malformed: -1.
double parse_slurm_time(const std::string& text);

// The allocation this process runs in (SLURM_JOB_ID and SLURM_JOB_NODELIST set), with its time
// left from `squeue -h -j <id> -o %L` (-1 when squeue cannot tell); nullopt outside one.
std::optional<SlurmAllocation> detect_slurm();

}  // namespace lt
