// Child processes of the launcher: mpirun for the health check and for the job. Each starts in
// its own process group (a Ctrl-C at the terminal reaches the launcher only, which decides),
// and the launcher makes itself a child subreaper, so ranks orphaned by a killed mpirun come
// back to it and can still be found and killed: a job never outlives its supervisor.
#pragma once
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace lt {

// Marks this process as a subreaper (Linux prctl); idempotent.
void become_subreaper();

struct ChildOptions {
  std::string stdout_path;      // "" = the launcher's stderr (its stdout stays for --json)
  std::vector<std::string> env;  // "NAME=value" added to the child's environment
};

// fork + exec of argv[0] (searched on PATH). Throws when the fork fails; an exec failure
// shows up as exit status 127. The child gets SIGTERM when the launcher dies.
pid_t spawn(const std::vector<std::string>& argv, const ChildOptions& o = {});

// Non-blocking: true when `pid` has ended; `status` gets its exit code, or 128 + signal.
bool reap(pid_t pid, int& status);

// Every live process below this one (children, their children, and orphans adopted by the
// subreaper), from /proc.
std::vector<pid_t> descendants();
// Ranks of this launch on this machine: world rank (OMPI_COMM_WORLD_RANK / PMIX_RANK in their
// environment) -> pid, among the descendants and the processes carrying this launcher's
// LT_LAUNCH_ID (srun's tasks are slurmstepd's children, not ours).
std::map<int, pid_t> local_ranks();

// SIGKILLs every descendant and every rank of this launch on this machine, and reaps them
// all (bounded wait).
void kill_all_descendants();

// "mpirun -np 4 ..." for logs (arguments with spaces quoted).
std::string join_command(const std::vector<std::string>& argv);

}  // namespace lt
