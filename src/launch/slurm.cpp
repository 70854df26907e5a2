#include "launch/slurm.h"

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "core/error.h"

namespace lt {

namespace {

// Splits at commas outside brackets.
std::vector<std::string> split_top(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char c : s) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (c == ',' && depth == 0) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

bool all_digits(const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; }

}  // namespace

std::vector<std::string> expand_hostlist(const std::string& list) {
  std::vector<std::string> out;
  auto bad = [&](const char* why) { fail("Slurm node list '{}': {}", list, why); };
  for (const std::string& item : split_top(list)) {
    if (item.empty()) bad("an empty name");
    const size_t lb = item.find('[');
    if (lb == std::string::npos) {
      if (item.find(']') != std::string::npos) bad("a ']' without '['");
      out.push_back(item);
      continue;
    }
    const size_t rb = item.find(']', lb);
    if (rb == std::string::npos) bad("a '[' without ']'");
    const std::string prefix = item.substr(0, lb), suffix = item.substr(rb + 1);
    if (suffix.find_first_of("[]") != std::string::npos) bad("more than one bracket group in a name");
    for (const std::string& range : split_top(item.substr(lb + 1, rb - lb - 1))) {
      const size_t dash = range.find('-');
      const std::string a = range.substr(0, dash), b = dash == std::string::npos ? a : range.substr(dash + 1);
      if (!all_digits(a) || !all_digits(b)) bad("a range that is not 'number' or 'number-number'");
      const long lo = std::stol(a), hi = std::stol(b);
      if (hi < lo || hi - lo > 100000) bad("a decreasing or huge range");
      for (long n = lo; n <= hi; ++n) {
        std::string digits = std::to_string(n);
        if (digits.size() < a.size()) digits.insert(0, a.size() - digits.size(), '0');  // node[01-10]
        out.push_back(prefix + digits + suffix);
      }
    }
  }
  return out;
}

std::vector<int> expand_tasks_per_node(const std::string& text) {
  std::vector<int> out;
  for (const std::string& item : split_top(text)) {
    int n = 0, times = 1;
    if (std::sscanf(item.c_str(), "%d(x%d)", &n, &times) < 1 || n < 0 || times < 1)
      fail("SLURM_TASKS_PER_NODE '{}': expected counts such as 4(x2),3", text);
    out.insert(out.end(), size_t(times), n);
  }
  return out;
}

double parse_slurm_time(const std::string& text) {
  if (text.empty() || text == "UNLIMITED" || text == "NOT_SET" || text == "INVALID") return -1;
  long days = 0;
  std::string rest = text;
  if (size_t d = text.find('-'); d != std::string::npos) {
    if (!all_digits(text.substr(0, d))) return -1;
    days = std::stol(text.substr(0, d));
    rest = text.substr(d + 1);
  }
  std::vector<long> parts;
  size_t p = 0;
  for (;;) {
    const size_t q = rest.find(':', p);
    const std::string f = rest.substr(p, q == std::string::npos ? std::string::npos : q - p);
    if (!all_digits(f)) return -1;
    parts.push_back(std::stol(f));
    if (q == std::string::npos) break;
    p = q + 1;
  }
  if (parts.size() > 3) return -1;
  // Slurm's time format: minutes, minutes:seconds, hours:minutes:seconds; after "days-":
  // hours, hours:minutes, hours:minutes:seconds.
  const bool with_days = rest.size() != text.size();
  static const double kUnits[2][3][3] = {{{60}, {60, 1}, {3600, 60, 1}}, {{3600}, {3600, 60}, {3600, 60, 1}}};
  double s = double(days) * 86400;
  for (size_t i = 0; i < parts.size(); ++i) s += double(parts[i]) * kUnits[with_days][parts.size() - 1][i];
  return s;
}

std::optional<SlurmAllocation> detect_slurm() {
  const char* id = std::getenv("SLURM_JOB_ID");
  const char* nodes = std::getenv("SLURM_JOB_NODELIST");
  if (!id || !nodes || !*id) return std::nullopt;
  SlurmAllocation a;
  a.job_id = id;
  a.nodes = expand_hostlist(nodes);
  if (const char* t = std::getenv("SLURM_NTASKS_PER_NODE"); t && *t) {
    a.tasks_per_node = std::atoi(t);
  } else if (const char* t2 = std::getenv("SLURM_TASKS_PER_NODE"); t2 && *t2) {
    std::vector<int> per = expand_tasks_per_node(t2);
    bool uniform = true;
    for (int n : per) uniform = uniform && n == per[0];
    if (uniform && !per.empty()) a.tasks_per_node = per[0];
  }
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(("squeue -h -j " + a.job_id + " -o %L 2>/dev/null").c_str(), "r"),
                                          pclose);
  if (p) {
    char buf[128] = {};
    if (std::fgets(buf, sizeof buf, p.get())) {
      std::string s(buf);
      while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
      a.seconds_left = parse_slurm_time(s);
    }
  }
  return a;
}

}  // namespace lt
