#include "parallel/watchdog.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "core/log.h"

namespace lt {

namespace {
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::atomic<int64_t> g_busy_since{0};  // 0: not inside a Comm call
std::atomic<const char*> g_busy_op{nullptr};
int g_depth = 0;  // only the thread that talks to MPI opens scopes (MPI_THREAD_FUNNELED)

struct Watchdog {
  std::mutex mu;
  std::condition_variable cv;
  std::thread thread;
  double timeout_s = 0;
  bool stop = false;

  void run() {
    std::unique_lock<std::mutex> lock(mu);
    while (!stop) {
      cv.wait_for(lock, std::chrono::milliseconds(200));
      if (stop) break;
      int64_t since = g_busy_since.load();
      if (since == 0) continue;
      double busy = double(now_ns() - since) * 1e-9;
      if (busy > timeout_s) {
        const char* op = g_busy_op.load();
        log::error("comm watchdog: stuck in {} for {:.1f} s (timeout {:.1f} s): a peer rank is not responding; "
                   "ending this process so the job stops",
                   op ? op : "?", busy, timeout_s);
        std::fflush(stderr);
        std::_Exit(kCommTimeoutExit);
      }
    }
  }
};

Watchdog& dog() {
  static Watchdog* w = new Watchdog();  // never destroyed: the thread may outlive static destructors
  return *w;
}
}  // namespace

void stop_comm_watchdog() {
  Watchdog& w = dog();
  {
    std::lock_guard<std::mutex> lock(w.mu);
    w.stop = true;
  }
  w.cv.notify_all();
  if (w.thread.joinable()) w.thread.join();
}

void start_comm_watchdog(double timeout_s) {
  stop_comm_watchdog();
  if (timeout_s <= 0) return;
  Watchdog& w = dog();
  w.stop = false;
  w.timeout_s = timeout_s;
  w.thread = std::thread([&w] { w.run(); });
}

CommBusyScope::CommBusyScope(const char* op) {
  if (g_depth++ == 0) {
    g_busy_op.store(op);
    g_busy_since.store(now_ns());
  }
}

CommBusyScope::~CommBusyScope() {
  if (--g_depth == 0) g_busy_since.store(0);
}

}  // namespace lt
