#include "launch/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/file.h"

namespace lt {

void become_subreaper() { prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

pid_t spawn(const std::vector<std::string>& argv, const ChildOptions& o) {
  LT_CHECK(!argv.empty(), "spawn: empty command");
  // Everything the child needs is prepared before fork: only async-signal-safe calls after.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int out_fd = -1;
  if (!o.stdout_path.empty()) {
    out_fd = open(o.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    LT_CHECK(out_fd >= 0, "cannot create {}: {}", o.stdout_path, std::strerror(errno));
  }
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    if (out_fd >= 0) close(out_fd);
    fail("cannot start {}: fork: {}", argv[0], std::strerror(errno));
  }
  if (pid == 0) {
    setpgid(0, 0);
    // If the launcher itself dies (SIGKILL, OOM killer), mpirun gets SIGTERM and takes the
    // job down (the ranks save and stop), instead of training on unsupervised.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    dup2(out_fd >= 0 ? out_fd : 2, 1);
    for (const auto& e : o.env) putenv(const_cast<char*>(e.c_str()));
    execvp(args[0], args.data());
    _exit(127);
  }
  if (out_fd >= 0) close(out_fd);
  setpgid(pid, pid);  // also from the parent: no race with a signal sent right after spawn
  return pid;
}

bool reap(pid_t pid, int& status) {
  int st = 0;
  pid_t r = waitpid(pid, &st, WNOHANG);
  if (r == 0) return false;
  if (r < 0) {  // already reaped elsewhere or not ours: treat as ended
    status = 255;
    return true;
  }
  status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 255;
  return true;
}

namespace {
// A /proc file's text, or "" when it cannot be read (the process may end meanwhile: a read
// then fails with ESRCH, which iostreams would throw).
std::string read_proc_file(const std::string& path) {
  std::string out;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
  close(fd);
  return out;
}

// pid -> parent pid for every process in /proc.
std::map<pid_t, pid_t> process_parents() {
  std::map<pid_t, pid_t> parents;
  DIR* d = opendir("/proc");
  if (!d) return parents;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    const std::string s = read_proc_file(std::string("/proc/") + e->d_name + "/stat");
    size_t rp = s.rfind(')');  // the command name may contain spaces and parentheses
    if (rp == std::string::npos) continue;
    std::istringstream rest(s.substr(rp + 1));
    char state;
    long ppid = 0;
    rest >> state >> ppid;
    if (state != 'Z') parents[pid_t(pid)] = pid_t(ppid);
  }
  closedir(d);
  return parents;
}

std::string read_environ(pid_t pid) { return read_proc_file("/proc/" + std::to_string(pid) + "/environ"); }

// The value of `key` ("NAME=") in a NUL-separated environment block; nullptr when absent.
const char* env_value(const std::string& env, const char* key) {
  size_t at = 0;
  while ((at = env.find(key, at)) != std::string::npos) {
    if (at == 0 || env[at - 1] == '\0') return env.c_str() + at + std::strlen(key);
    at += 1;
  }
  return nullptr;
}

int rank_in(const std::string& env) {
  for (const char* key : {"OMPI_COMM_WORLD_RANK=", "PMIX_RANK="})
    if (const char* v = env_value(env, key)) return std::atoi(v);
  return -1;
}

// Ranks of this launch anywhere on this machine, whoever started them (under srun they are
// slurmstepd's children): processes whose environment carries this launcher's LT_LAUNCH_ID.
std::vector<pid_t> tagged_processes() {
  std::vector<pid_t> out;
  const char* id = std::getenv("LT_LAUNCH_ID");
  if (!id || !*id) return out;
  for (const auto& [pid, ppid] : process_parents()) {
    if (pid == getpid()) continue;
    const std::string env = read_environ(pid);
    if (const char* v = env_value(env, "LT_LAUNCH_ID="); v && std::strcmp(v, id) == 0 && rank_in(env) >= 0)
      out.push_back(pid);
  }
  return out;
}
}  // namespace

namespace {
// Children this process already had when it started are not ours to kill: a shell running
// `llamatrain launch ... 2> >(tee log)` forks the `tee` from the launcher's process before exec.
std::set<pid_t> children_at_start() {
  std::set<pid_t> out;
  for (const auto& [pid, ppid] : process_parents())
    if (ppid == getpid()) out.insert(pid);
  return out;
}
const std::set<pid_t> g_inherited = children_at_start();
}  // namespace

std::vector<pid_t> descendants() {
  auto parents = process_parents();
  std::set<pid_t> mine{getpid()};
  bool grew = true;
  while (grew) {
    grew = false;
    for (const auto& [pid, ppid] : parents)
      if (mine.count(ppid) && !(ppid == getpid() && g_inherited.count(pid)) && mine.insert(pid).second) grew = true;
  }
  mine.erase(getpid());
  return {mine.begin(), mine.end()};
}

std::map<int, pid_t> local_ranks() {
  std::map<int, pid_t> ranks;
  std::vector<pid_t> procs = descendants(), tagged = tagged_processes();
  procs.insert(procs.end(), tagged.begin(), tagged.end());
  for (pid_t p : procs) {
    int r = rank_in(read_environ(p));
    // mpirun's own helpers do not carry a rank; a rank's own children (none today) would
    // carry its rank too, so keep the lowest pid (the rank itself starts first).
    if (r >= 0 && (!ranks.count(r) || p < ranks[r])) ranks[r] = p;
  }
  return ranks;
}

void kill_all_descendants() {
  for (int round = 0; round < 50; ++round) {
    auto pids = descendants(), tagged = tagged_processes();
    pids.insert(pids.end(), tagged.begin(), tagged.end());
    for (pid_t p : pids) kill(p, SIGKILL);
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    if (pids.empty()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

std::string join_command(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a.find_first_of(" \t\"'") == std::string::npos ? a : "'" + a + "'";
  }
  return s;
}

}  // namespace lt
