// llamatrain: one binary, one subcommand per step of the workflow.
// Every failure to start a command — the environment, the command line, then the command's own
// checks — prints one `error: <message>` line and exits 1; --help and --version exit 0.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/env.h"
#include "core/error.h"

namespace {

void print_env_table() {
  for (const auto& s : lt::env_specs())
    std::printf("%s\t%s\t%s\n", s.name, lt::env_allowed(s).c_str(), s.meaning);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"llamatrain: continual pretraining and fine-tuning of Llama-architecture models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "llamatrain 0.1.0");
  lt::cli::register_model_info(app);
  lt::cli::register_convert(app);
  lt::cli::register_generate(app);
  lt::cli::register_data(app);
  lt::cli::register_plan(app);
  lt::cli::register_healthcheck(app);
  lt::cli::register_train(app);
  lt::cli::register_launch(app);
  lt::cli::register_eval(app);
  // Hidden: the declarations the bad-input tests are generated from.
  app.add_flag_callback("--list-options", [&app] {
       std::printf("%s", lt::cli::option_table(app).c_str());
       throw CLI::Success();
     })->group("");
  app.add_flag_callback("--list-env", [] {
       print_env_table();
       throw CLI::Success();
     })->group("");
  try {
    lt::check_environment();
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version, --list-*
    std::fprintf(stderr, "error: %s\n", lt::cli::parse_error_message(app, e, argc, argv).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
