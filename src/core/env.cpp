#include "core/env.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace lt {

namespace {

constexpr double kMaxStep = 1e15;    // steps, far beyond any run
constexpr double kMaxRanks = 1 << 24;

}  // namespace

const std::vector<EnvSpec>& env_specs() {
  using K = EnvKind;
  static const std::vector<EnvSpec> specs = {
      {"LT_COMM_TIMEOUT", K::number, 0, 7 * 86400,
       "seconds a rank may wait in one collective before it exits with status 75 (0: wait forever)"},
      {"LT_COMM_SEGMENT_BYTES", K::integer, 64, double(1ull << 30),
       "bytes per segment of the deterministic all-reduce (default 64 MiB; tests make it small)"},
      {"LT_NO_MPI", K::flag, 0, 0, "true: run as one process even under a launcher"},
      {"LT_PEAK_GFLOPS_PER_CORE", K::number, 1e-3, 1e6,
       "peak GFLOP/s of one core, the denominator of the console MFU"},
      {"LT_GEMM_PROFILE", K::flag, 0, 0, "true: print time and GFLOP/s per GEMM shape at exit"},
      {"LT_PEAK_TFLOPS", K::number, 1e-3, 1e6,
       "cuda: peak TFLOP/s of this GPU, the denominator of the console MFU (default: the card's dense bf16 peak)"},
      {"LT_ATTENTION", K::text, 0, 0, "cuda: 'flash' runs our flash-attention kernels instead of cuDNN's"},
      {"LT_CUDA_PROFILE", K::flag, 0, 0, "cuda: true: print the CUDA stage's time per kernel category at exit"},
      {"OMP_NUM_THREADS", K::integer_list, 1, 4096, "OpenMP threads per rank (per nesting level)"},
      {"OMPI_COMM_WORLD_SIZE", K::integer, 1, kMaxRanks, "set by mpirun: ranks in the job"},
      {"OMPI_COMM_WORLD_RANK", K::integer, 0, kMaxRanks, "set by mpirun: this rank"},
      {"OMPI_COMM_WORLD_LOCAL_RANK", K::integer, 0, kMaxRanks, "set by mpirun: this rank on its host"},
      {"OMPI_COMM_WORLD_LOCAL_SIZE", K::integer, 1, kMaxRanks, "set by mpirun: ranks on this host"},
      {"SLURM_PROCID", K::integer, 0, kMaxRanks, "set by srun: this task"},
      {"SLURM_NTASKS", K::integer, 1, kMaxRanks, "set by srun: tasks in the step"},
      {"SLURM_LOCALID", K::integer, 0, kMaxRanks, "set by srun: this task on its node"},
      // Slurm writes e.g. "4(x2),3": only the leading count is used.
      {"SLURM_NTASKS_PER_NODE", K::text, 0, 0, "set by srun: tasks per node"},
      {"PMIX_RANK", K::integer, 0, kMaxRanks, "set by a PMIx launcher: this rank"},
      {"PMI_RANK", K::integer, 0, kMaxRanks, "set by a PMI launcher: this rank"},
      {"PMI_SIZE", K::integer, 1, kMaxRanks, "set by a PMI launcher: ranks in the job"},
      // Fault injection for tests (src/launch/fault.h, the trainer's and the checkpoint pruner's hooks).
      {"LT_FAULT_KILL_AT_STEP", K::integer_list, 0, kMaxStep, "launch: SIGKILL a rank at these steps"},
      {"LT_FAULT_STOP_AT_STEP", K::integer_list, 0, kMaxStep, "launch: SIGSTOP a rank at these steps"},
      {"LT_FAULT_KILL_IN_SAVE", K::integer_list, 0, kMaxStep,
       "launch: SIGKILL a rank while these steps' checkpoints are written"},
      {"LT_FAULT_KILL_IN_PRUNE", K::integer_list, 0, kMaxStep,
       "launch: SIGKILL rank 0 while it deletes old checkpoints, after these steps"},
      {"LT_FAULT_EXIT_AT_STEP", K::integer_list, 0, kMaxStep,
       "train: a rank (LT_FAULT_RANK, default 0) exits with status 3 after this step"},
      {"LT_FAULT_RANK", K::integer, 0, kMaxRanks, "the world rank the faults hit (default: a random local rank)"},
      {"LT_FAULT_SEED", K::integer, 0, 4294967295.0, "seed of the random choice of rank"},
      {"LT_FAULT_HEALTHCHECK_LATER", K::text, 0, 0,
       "launch: LT_HEALTHCHECK_FAULT for the health checks after the first attempt"},
      {"LT_HEALTHCHECK_FAULT", K::text, 0, 0, "healthcheck: 'compute:R,memory:R,comm:R' makes rank R fail that check"},
      {"LT_FAULT_NAN_AT_STEP", K::integer, 1, kMaxStep, "train: the gradient of this step becomes NaN"},
      {"LT_FAULT_SPIKE_AT_STEP", K::integer, 1, kMaxStep,
       "train: this step's gradient x 1000 and loss x 10 (on LT_FAULT_RANK, default every rank)"},
      {"LT_FAULT_SAVE_DELAY_S", K::number, 0, 3600,
       "train: seconds each checkpoint save is held open after the shards are written"},
      {"LT_FAULT_PRUNE_DELAY_S", K::number, 0, 3600,
       "checkpoint retention: seconds each deletion is held open after DONE is removed"},
      // Remote storage (ckpt/s3_client.h): strings, checked where they are used.
      {"AWS_ACCESS_KEY_ID", K::text, 0, 0, "S3 access key"},
      {"AWS_SECRET_ACCESS_KEY", K::text, 0, 0, "S3 secret key (never printed)"},
      {"AWS_SESSION_TOKEN", K::text, 0, 0, "S3 session token (never printed)"},
      {"AWS_PROFILE", K::text, 0, 0, "profile in the AWS credentials/config files"},
      {"AWS_SHARED_CREDENTIALS_FILE", K::text, 0, 0, "AWS credentials file"},
      {"AWS_CONFIG_FILE", K::text, 0, 0, "AWS config file"},
      {"AWS_REGION", K::text, 0, 0, "S3 region"},
      {"AWS_DEFAULT_REGION", K::text, 0, 0, "S3 region (second choice)"},
      {"AWS_ENDPOINT_URL_S3", K::text, 0, 0, "S3 endpoint URL"},
      {"AWS_ENDPOINT_URL", K::text, 0, 0, "S3 endpoint URL (second choice)"},
  };
  return specs;
}

namespace {

const EnvSpec& spec_of(const char* name) {
  for (const auto& s : env_specs())
    if (std::strcmp(s.name, name) == 0) return s;
  fail("internal error: environment variable {} is read but not declared in core/env.cpp", name);
}

const char* raw(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

[[noreturn]] void bad_value(const EnvSpec& s, const std::string& value) {
  fail("environment variable {}='{}': expected {} ({})", s.name, value, env_allowed(s), s.meaning);
}

// A whole number (no sign for negatives beyond lo's check, no junk) or a finite number.
double parse_number(const EnvSpec& s, const std::string& text, bool integer) {
  const char* p = text.c_str();
  char* end = nullptr;
  errno = 0;
  double v = integer ? double(std::strtoll(p, &end, 10)) : std::strtod(p, &end);
  if (end == p || *end != '\0' || errno == ERANGE || !std::isfinite(v) || v < s.lo || v > s.hi)
    bad_value(s, text);
  return v;
}

bool parse_flag(const EnvSpec& s, const std::string& v) {
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  bad_value(s, v);
}

// LT_HEALTHCHECK_FAULT and LT_FAULT_HEALTHCHECK_LATER: "kind:rank[,kind:rank...]".
void check_healthcheck_faults(const EnvSpec& s, const std::string& v) {
  size_t pos = 0;
  while (pos <= v.size()) {
    size_t end = v.find(',', pos);
    std::string item = v.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    size_t colon = item.find(':');
    std::string kind = item.substr(0, colon);
    if (colon == std::string::npos || (kind != "compute" && kind != "memory" && kind != "comm"))
      fail("environment variable {}='{}': expected items compute:RANK, memory:RANK or comm:RANK separated by "
           "commas ({})", s.name, v, s.meaning);
    EnvSpec rank{s.name, EnvKind::integer, 0, kMaxRanks, s.meaning};
    try {
      parse_number(rank, item.substr(colon + 1), true);
    } catch (const Error&) {
      fail("environment variable {}='{}': '{}' is not a rank (an integer in [0, {}])", s.name, v,
           item.substr(colon + 1), kMaxRanks);
    }
    if (end == std::string::npos) break;
    pos = end + 1;
  }
}

void check_one(const EnvSpec& s, const std::string& v) {
  switch (s.kind) {
    case EnvKind::integer: parse_number(s, v, true); break;
    case EnvKind::number: parse_number(s, v, false); break;
    case EnvKind::flag: parse_flag(s, v); break;
    case EnvKind::integer_list: env_int_list(s.name); break;
    case EnvKind::text:
      if (std::strcmp(s.name, "LT_HEALTHCHECK_FAULT") == 0 || std::strcmp(s.name, "LT_FAULT_HEALTHCHECK_LATER") == 0)
        check_healthcheck_faults(s, v);
      break;
  }
}

}  // namespace

std::string env_allowed(const EnvSpec& s) {
  switch (s.kind) {
    case EnvKind::integer: return fmt::format("an integer in [{}, {}]", int64_t(s.lo), int64_t(s.hi));
    case EnvKind::number: return fmt::format("a number in [{}, {}]", s.lo, s.hi);
    case EnvKind::integer_list:
      return fmt::format("integers in [{}, {}] separated by commas", int64_t(s.lo), int64_t(s.hi));
    case EnvKind::flag: return "1/true/yes/on or 0/false/no/off";
    case EnvKind::text: return "text";
  }
  return "?";
}

void check_environment() {
  for (const auto& s : env_specs())
    if (const char* v = raw(s.name)) check_one(s, v);
}

int64_t env_int(const char* name, int64_t fallback) {
  const EnvSpec& s = spec_of(name);
  const char* v = raw(name);
  return v ? int64_t(parse_number(s, v, true)) : fallback;
}

double env_number(const char* name, double fallback) {
  const EnvSpec& s = spec_of(name);
  const char* v = raw(name);
  return v ? parse_number(s, v, false) : fallback;
}

std::vector<int64_t> env_int_list(const char* name) {
  const EnvSpec& s = spec_of(name);
  std::vector<int64_t> out;
  const char* v = raw(name);
  if (!v) return out;
  std::string text = v;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    std::string item = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    try {
      out.push_back(int64_t(parse_number(s, item, true)));
    } catch (const Error&) {
      bad_value(s, text);
    }
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return out;
}

bool env_flag(const char* name, bool fallback) {
  const EnvSpec& s = spec_of(name);
  const char* v = raw(name);
  return v ? parse_flag(s, v) : fallback;
}

const char* env_text(const char* name) {
  spec_of(name);
  return raw(name);
}

}  // namespace lt
