// Comm watchdog: MPI blocks forever when a peer stops (SIGSTOP, a deadlock, a wedged NIC)
// without dying. Every blocking Comm call marks itself busy; a background thread ends the
// process when one call stays busy longer than the timeout, so mpirun tears the whole job
// down and the launcher can restart it. (A peer that dies is handled by mpirun itself.)
#pragma once

namespace lt {

// Starts the watchdog thread (idempotent; a new timeout replaces the old one).
// timeout_s <= 0 stops it. Exit status on a timeout: kCommTimeoutExit.
void start_comm_watchdog(double timeout_s);
void stop_comm_watchdog();
constexpr int kCommTimeoutExit = 75;

// Marks one blocking communication call; nested scopes count as the outermost one.
class CommBusyScope {
 public:
  explicit CommBusyScope(const char* op);
  ~CommBusyScope();
  CommBusyScope(const CommBusyScope&) = delete;
  CommBusyScope& operator=(const CommBusyScope&) = delete;
};

}  // namespace lt
