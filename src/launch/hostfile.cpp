#include "launch/hostfile.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file.h"

namespace lt {

namespace {

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r"), b = s.find_last_not_of(" \t\r");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

struct AddrList {
  addrinfo* head = nullptr;
  ~AddrList() {
    if (head) freeaddrinfo(head);
  }
};

// Resolves `name`; returns "" or the resolver's reason.
std::string resolve(const std::string& name, AddrList& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(name.c_str(), "22", &hints, &out.head);
  return rc == 0 ? "" : gai_strerror(rc);
}

std::string addr_text(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
  return buf;
}

// Connects to `ai` with a timeout; "" on success, else the reason.
std::string try_connect(const addrinfo* ai, double timeout_s) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) return std::strerror(errno);
  std::string why;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) {
      why = std::strerror(errno);
    } else {
      pollfd p{fd, POLLOUT, 0};
      int n = poll(&p, 1, int(timeout_s * 1000));
      if (n == 0) {
        why = fmt::format("no answer within {} s", timeout_s);
      } else {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) why = std::strerror(err);
      }
    }
  }
  close(fd);
  return why;
}

}  // namespace

std::vector<HostEntry> parse_hostfile(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<HostEntry> hosts;
  std::set<std::string> seen;
  std::string raw;
  for (int line_no = 1; std::getline(in, raw); ++line_no) {
    std::string line = trim(raw.substr(0, raw.find('#')));
    if (line.empty()) continue;
    std::istringstream words(line);
    HostEntry h;
    h.line = line_no;
    words >> h.name;
    std::string kv;
    while (words >> kv) {
      size_t eq = kv.find('=');
      std::string key = kv.substr(0, eq), val = eq == std::string::npos ? "" : kv.substr(eq + 1);
      if (key != "slots" && key != "max_slots" && key != "max-slots")
        fail("hostfile {} line {}: unknown field '{}' (expected: hostname [slots=N] [max_slots=N])", path, line_no, kv);
      char* end = nullptr;
      long n = std::strtol(val.c_str(), &end, 10);
      if (val.empty() || *end || n <= 0)
        fail("hostfile {} line {}: '{}' needs a positive integer", path, line_no, kv);
      if (key == "slots") h.slots = int(n);
    }
    if (!seen.insert(h.name).second) fail("hostfile {} line {}: host '{}' is listed twice", path, line_no, h.name);
    hosts.push_back(h);
  }
  LT_CHECK(!hosts.empty(), "hostfile {}: no hosts (one 'hostname slots=N' per line)", path);
  return hosts;
}

bool is_local_host(const std::string& name) {
  AddrList al;
  if (!resolve(name, al).empty()) return false;
  std::set<std::string> mine;
  ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) == 0) {
    for (ifaddrs* i = ifs; i; i = i->ifa_next)
      if (i->ifa_addr) mine.insert(addr_text(i->ifa_addr));
    freeifaddrs(ifs);
  }
  for (addrinfo* a = al.head; a; a = a->ai_next) {
    std::string t = addr_text(a->ai_addr);
    if (t.rfind("127.", 0) == 0 || t == "::1" || mine.count(t)) return true;
  }
  return false;
}

void check_hosts(const std::vector<HostEntry>& hosts, const std::string& path, int procs_per_node, bool probe_ssh,
                 double timeout_s) {
  for (const HostEntry& h : hosts) {
    AddrList al;
    std::string why = resolve(h.name, al);
    if (!why.empty())
      fail("hostfile {} line {}: unknown host '{}' ({}); fix the name or remove the line", path, h.line, h.name, why);
    if (h.slots > 0 && h.slots < procs_per_node)
      fail("hostfile {} line {}: host '{}' has slots={}, fewer than --procs-per-node {}", path, h.line, h.name,
           h.slots, procs_per_node);
    if (!probe_ssh || is_local_host(h.name)) continue;
    std::string last;
    bool ok = false;
    for (addrinfo* a = al.head; a && !ok; a = a->ai_next) {
      last = try_connect(a, timeout_s);
      ok = last.empty();
    }
    if (!ok)
      fail("hostfile {} line {}: host '{}' is unreachable: ssh port 22: {} (mpirun starts remote ranks over ssh; "
           "--no-host-probe skips this check)",
           path, h.line, h.name, last);
  }
}

void write_hostfile(const std::string& path, const std::vector<std::string>& hosts, int slots) {
  std::string text = "# written by llamatrain launch for one attempt\n";
  for (const std::string& h : hosts) text += fmt::format("{} slots={}\n", h, slots);
  write_file_atomic(path, text);
}

}  // namespace lt
