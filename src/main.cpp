// bsbr-bench: one executable that benchmarks causal-attention architectures on oneDNN CPU kernels.
// main() wires the subcommands and turns errors into exit codes:
//   0 ok, 1 check found a regression, 2 bad input (one line), 3 broken internal invariant.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "bench/environment.hpp"
#include "cli/commands.hpp"
#include "core/errors.hpp"

int main(int argc, char** argv) {
  bsbr::apply_omp_wait_policy(argv);  // may re-execute the binary (OpenMP reads its wait policy at load)
  spdlog::set_pattern("%^%l%$: %v");
  CLI::App app{"bsbr-bench: benchmarks efficient causal-attention architectures (BSBR, Standard, Linear, DeltaNet, "
               "SlidingWindow, Hopfield, GAU) on oneDNN CPU kernels"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  int exit_code = 0;
  bsbr::cli::add_compare(app, exit_code);
  bsbr::cli::add_forward(app, exit_code);
  bsbr::cli::add_analyze(app, exit_code);
  bsbr::cli::add_check(app, exit_code);
  bsbr::cli::add_targets(app, exit_code);
  bsbr::cli::add_convert(app, exit_code);
  bsbr::cli::add_ab(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s (see %s --help)\n", e.what(), argv[0]);
    return 2;
  } catch (const bsbr::UserError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const bsbr::InvariantError& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 3;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  }
  return exit_code;
}
