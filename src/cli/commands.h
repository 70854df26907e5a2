// Each subcommand lives in its own cmd_*.cpp and registers itself on the CLI11 app here.
// A command's callback throws lt::Error for bad input; main() prints it and exits 1.
#pragma once
#include <CLI/CLI.hpp>

namespace lt::cli {

void register_model_info(CLI::App& app);
void register_convert(CLI::App& app);
void register_generate(CLI::App& app);
void register_data(CLI::App& app);  // prepare, tokenize, data inspect
void register_plan(CLI::App& app);
void register_healthcheck(CLI::App& app);
void register_train(CLI::App& app);
void register_launch(CLI::App& app);
void register_eval(CLI::App& app);

}  // namespace lt::cli
