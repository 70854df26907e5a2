// Environment variables llamatrain reads, declared once (name, kind, allowed range, meaning) and
// checked once, at start-up: a variable that is set must be well formed and in range, or the
// command stops with an error naming the variable, its value and what is allowed. (Read with
// atoi, a malformed LT_COMM_TIMEOUT became 0 and switched the comm watchdog off silently.)
//
// Code reads them through env_int / env_number / env_int_list / env_flag / env_text, which
// look up the declaration, so the range is written in one place. Unset or empty means "use the
// fallback". The AWS_* variables are strings read by the S3 configuration (ckpt/s3_client.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lt {

enum class EnvKind { integer, number, integer_list, flag, text };

struct EnvSpec {
  const char* name;
  EnvKind kind;
  double lo, hi;  // allowed range of each number (integer, number, integer_list)
  const char* meaning;
};

// Every declared variable, in documentation order.
const std::vector<EnvSpec>& env_specs();
// "an integer in [1, 65536]", "a number in [0, 1e+06]", "true or false", "text".
std::string env_allowed(const EnvSpec& s);

// Checks every declared variable that is set; throws lt::Error naming the first bad one.
void check_environment();

// The value of a declared variable (lt::Error for an undeclared name: a programming error).
// Unset or empty: the fallback (env_text: nullptr; env_int_list: empty).
int64_t env_int(const char* name, int64_t fallback);
double env_number(const char* name, double fallback);
std::vector<int64_t> env_int_list(const char* name);
bool env_flag(const char* name, bool fallback);
const char* env_text(const char* name);

}  // namespace lt
