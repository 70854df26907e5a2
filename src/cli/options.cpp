#include "cli/options.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>

#include <filesystem>

#include "ckpt/convert.h"  // parse_byte_size
#include "core/error.h"
#include "launch/duration.h"

namespace lt::cli {

namespace {

constexpr const char* kRange = "RANGE";  // validator name: the declared range (shown in --help)
constexpr const char* kKind = "kind:";   // validator name prefix: int | number | duration (no check)

std::string range_text(double lo, double hi, const char* bounds) {
  return fmt::format("{}{}, {}{}", bounds[0], lo, hi, bounds[1]);
}

// Parses `s` completely as an integer (integer=true) or a finite number; false on anything else.
bool parse_number(const std::string& s, bool integer, double& v) {
  if (s.empty()) return false;
  const char* p = s.c_str();
  char* end = nullptr;
  errno = 0;
  if (integer) {
    long long x = std::strtoll(p, &end, 10);
    v = double(x);
  } else {
    v = std::strtod(p, &end);
  }
  return end != p && *end == '\0' && errno != ERANGE && std::isfinite(v);
}

CLI::Option* add_checks(CLI::Option* opt, const char* kind, CLI::Validator range) {
  opt->check(CLI::Validator([](std::string&) { return std::string(); }, "", std::string(kKind) + kind));
  opt->check(range.name(kRange));
  return opt;
}

// The option's validators, in order (CLI11 has no list accessor).
std::vector<CLI::Validator*> validators(CLI::Option* opt) {
  std::vector<CLI::Validator*> out;
  for (int i = 0;; ++i) {
    try {
      out.push_back(opt->get_validator(i));
    } catch (const CLI::OptionNotFound&) {
      return out;
    }
  }
}

std::string kind_of(CLI::Option* opt) {
  if (opt->get_type_size() == 0) return "flag";
  for (CLI::Validator* v : validators(opt))
    if (v->get_name().rfind(kKind, 0) == 0)
      return v->get_name().substr(std::strlen(kKind)) + (opt->get_items_expected_max() > 1 ? "-list" : "");
  for (CLI::Validator* v : validators(opt))
    if (v->get_description().rfind('{', 0) == 0) return "choice";
  return "text";
}

std::string allowed_of(CLI::Option* opt) {
  for (CLI::Validator* v : validators(opt)) {
    std::string d = v->get_description();
    if (v->get_name() == kRange) return d;
    if (d.size() > 2 && d.front() == '{' && d.back() == '}') {  // IsMember's "{a,b,c}"
      std::string out = d.substr(1, d.size() - 2);
      for (char& c : out)
        if (c == ',') c = '|';
      return out;
    }
  }
  return "-";
}

void collect(CLI::App& app, const std::string& path, std::string& out) {
  for (CLI::Option* opt : app.get_options()) {
    if (opt->get_name() == "--help" || opt->get_name() == "-h" || opt->get_name() == "--version") continue;
    if (opt->get_group().empty()) continue;  // hidden
    std::string name = opt->get_lnames().empty() ? opt->get_name() : "--" + opt->get_lnames()[0];
    out += fmt::format("{}\t{}\t{}\t{}\t{}\n", path, name, kind_of(opt), allowed_of(opt), opt->get_required() ? 1 : 0);
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    collect(*sub, path.empty() ? sub->get_name() : path + " " + sub->get_name(), out);
}

}  // namespace

CLI::Option* in_range(CLI::Option* opt, int64_t lo, int64_t hi) {
  std::string name = opt->get_name();
  auto check = [lo, hi](std::string& s) -> std::string {
    double v = 0;
    if (parse_number(s, true, v) && v >= double(lo) && v <= double(hi)) return "";
    return fmt::format("expected an integer in [{}, {}], got '{}'", lo, hi, s);
  };
  return add_checks(opt, "int", CLI::Validator(check, range_text(double(lo), double(hi), "[]")));
}

CLI::Option* in_range(CLI::Option* opt, double lo, double hi, const char* bounds) {
  const bool lo_open = bounds[0] == '(', hi_open = bounds[1] == ')';
  auto check = [=](std::string& s) -> std::string {
    double v = 0;
    if (parse_number(s, false, v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi)) return "";
    return fmt::format("expected a number in {}, got '{}'", range_text(lo, hi, bounds), s);
  };
  return add_checks(opt, "number", CLI::Validator(check, range_text(lo, hi, bounds)));
}

CLI::Option* duration_range(CLI::Option* opt, double lo_s, double hi_s) {
  auto check = [lo_s, hi_s](std::string& s) -> std::string {
    if (lo_s == 0 && (s == "0" || s == "0s")) return "";
    double v = 0;
    try {
      v = parse_duration(s, "@");
    } catch (const std::exception& e) {
      return std::string(e.what()).substr(3);  // parse_duration's reason, without "@: "
    }
    if (v >= lo_s && v <= hi_s) return "";
    return fmt::format("'{}' ({} s) is outside the allowed range of {} s to {} s", s, v, lo_s, hi_s);
  };
  return add_checks(opt, "duration", CLI::Validator(check, range_text(lo_s, hi_s, "[]")));
}

void check_config_file(const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  LT_CHECK(!std::filesystem::is_directory(path, ec), "--config '{}' is a directory; give the YAML file in it", path);
  LT_CHECK(std::filesystem::exists(path, ec), "--config '{}' does not exist", path);
}

CLI::Option* byte_size_range(CLI::Option* opt, double lo, double hi) {
  auto check = [lo, hi](std::string& s) -> std::string {
    try {
      double v = double(parse_byte_size(s));
      if (v >= lo && v <= hi) return "";
      return fmt::format("'{}' ({} bytes) is outside the allowed range of {} to {} bytes", s, v, lo, hi);
    } catch (const std::exception& e) {
      return e.what();
    }
  };
  return add_checks(opt, "size", CLI::Validator(check, range_text(lo, hi, "[]")));
}

std::string option_table(CLI::App& app) {
  std::string out;
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) collect(*sub, sub->get_name(), out);
  return out;
}

std::string parse_error_message(CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  // The deepest subcommand that was recognised, and the words that named it.
  CLI::App* at = &app;
  std::string path;
  for (;;) {
    auto parsed = at->get_subcommands();
    if (parsed.empty()) break;
    at = parsed.front();
    path += (path.empty() ? "" : " ") + at->get_name();
  }
  const bool needs_command = at->get_require_subcommand_min() > 0;
  std::string commands;
  for (CLI::App* sub : at->get_subcommands([](CLI::App*) { return true; }))
    commands += (commands.empty() ? "" : ", ") + sub->get_name();
  if (needs_command) {
    // The first word after the recognised ones that is not an option: an unknown command.
    int words = 0;
    for (const char* c = path.c_str(); *c; ++c) words += *c == ' ';
    int seen = path.empty() ? 0 : words + 1;
    for (int i = 1; i < argc; ++i) {
      if (argv[i][0] == '-') continue;
      if (seen-- > 0) continue;
      return fmt::format("unknown command '{}{}{}' (commands: {}; `llamatrain {}{}--help` describes them)", path,
                         path.empty() ? "" : " ", argv[i], commands, path, path.empty() ? "" : " ");
    }
    return fmt::format("no command given after 'llamatrain{}{}' (commands: {})", path.empty() ? "" : " ", path,
                       commands);
  }
  return fmt::format("{}{}{} (see `llamatrain {} --help`)", path, path.empty() ? "" : ": ", e.what(), path);
}

}  // namespace lt::cli
