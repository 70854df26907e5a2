// llamatrain: one binary, one subcommand per step of the workflow.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"

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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const lt::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
