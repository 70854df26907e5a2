// Numeric command-line options declare their allowed range once, with the option:
//   in_range(cmd->add_option("--tp", o->tp, "Tensor-parallel degree"), 1, 4096);
// The check runs while the command line is parsed, before any command starts (so nothing is
// written), and its message names the option, the value and the range:
//   error: --tp: expected an integer in [1, 4096], got '0'
// `llamatrain --list-options` prints every option of every subcommand with its type and range
// (what the table-driven bad-input test, tests/cli/bad_input_test.sh, is generated from).
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace lt::cli {

// Whole numbers in [lo, hi] (each element, for a list option).
CLI::Option* in_range(CLI::Option* opt, int64_t lo, int64_t hi);
// Finite numbers between lo and hi; `bounds` says which ends are included: "[]", "(]", "[)", "()".
CLI::Option* in_range(CLI::Option* opt, double lo, double hi, const char* bounds);
// Durations ("90m", "2d", launch/duration.h) of at least lo and at most hi seconds; with lo 0,
// "0" (off) is accepted too.
CLI::Option* duration_range(CLI::Option* opt, double lo_s, double hi_s);

// Byte sizes ("5GB", "500MB", "2GiB", ckpt/convert.h's parse_byte_size) from lo to hi bytes.
CLI::Option* byte_size_range(CLI::Option* opt, double lo, double hi);

// One line per option of every subcommand, tab-separated:
//   <command path> <option name> <kind> <allowed> <required: 1|0>
// kind: int|number|duration|size (with "-list" when the option takes several), choice, flag, text.
// <allowed> is "[lo, hi]", "(lo, hi]", ... for numbers and durations (in seconds), "a|b|c" for
// choices, "-" otherwise.
std::string option_table(CLI::App& app);

// --config of train and launch: an existing regular file (a directory is named as such).
void check_config_file(const std::string& path);

// The message for a command line the parser refused, as every other error reads.
std::string parse_error_message(CLI::App& app, const CLI::ParseError& e, int argc, char** argv);

}  // namespace lt::cli
