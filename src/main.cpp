// bsbr-bench: one executable that benchmarks causal-attention architectures on oneDNN CPU kernels.
// main() wires the subcommands and owns the exit-code contract (README "Errors and limits"):
//   0 ok; 1 a regression or a missed target, and nothing else;
//   2 unusable input or environment (one line naming the flag, file or field; out of memory
//     naming the operation; an interrupt);
//   3 a bug in bsbr-bench (file:line where known).
// Every exception is caught here, and std::terminate (an exception escaping a thread or a
// noexcept function) is turned into exit 3 with one line: no raw `terminate` text ever.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <oneapi/dnnl/dnnl.hpp>
#include <typeinfo>

#include "bench/environment.hpp"
#include "cli/commands.hpp"
#include "core/errors.hpp"
#include "core/interrupt.hpp"

namespace {

[[noreturn]] void on_terminate() {
  std::string what = "no active exception";
  if (std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = std::string(typeid(x).name()) + ": " + x.what();
    } catch (...) {
      what = "an exception of unknown type";
    }
  }
  std::fprintf(stderr, "internal error: std::terminate called (%s); a bug in bsbr-bench, please report it\n", what.c_str());
  bsbr::remove_temp_paths();
  std::_Exit(3);
}

// "unknown subcommand 'x' (known: compare, forward, ...)" before CLI11, whose own words
// ("A subcommand is required", "arguments were not expected") do not say what is wrong.
int check_subcommand(const CLI::App& app, int argc, char** argv) {
  std::string known;
  for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; })) known += (known.empty() ? "" : ", ") + s->get_name();
  if (argc < 2) {
    std::fprintf(stderr, "error: a subcommand is required (known: %s; see %s --help)\n", known.c_str(), argv[0]);
    return 2;
  }
  const std::string first = argv[1];
  if (first.empty() || first[0] != '-') {
    for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; }))
      if (s->check_name(first)) return 0;
    std::fprintf(stderr, "error: unknown subcommand '%s' (known: %s; see %s --help)\n", first.c_str(), known.c_str(), argv[0]);
    return 2;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bsbr::apply_omp_wait_policy(argv);  // may re-execute the binary (OpenMP reads its wait policy at load)
  std::set_terminate(on_terminate);
  bsbr::install_interrupt_handlers();
  spdlog::set_pattern("%^%l%$: %v");
  CLI::App app{"bsbr-bench: benchmarks efficient causal-attention architectures (BSBR, Standard, Linear, DeltaNet, "
               "SlidingWindow, Hopfield, GAU) on oneDNN CPU kernels"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  int exit_code = 0;
  try {
    bsbr::cli::add_compare(app, exit_code);
    bsbr::cli::add_forward(app, exit_code);
    bsbr::cli::add_analyze(app, exit_code);
    bsbr::cli::add_check(app, exit_code);
    bsbr::cli::add_targets(app, exit_code);
    bsbr::cli::add_convert(app, exit_code);
    bsbr::cli::add_ab(app, exit_code);
    bsbr::cli::add_lm(app, exit_code);
    if (int code = check_subcommand(app, argc, argv)) return code;
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s (see %s --help)\n", e.what(), argv[0]);
    return 2;
  } catch (const bsbr::Interrupted& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const bsbr::UserError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const bsbr::InvariantError& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 3;
  } catch (const std::bad_alloc&) {
    // Operations that can run out of memory for a user's setting rethrow it as a UserError naming
    // the setting (bsbr::out_of_memory_as_error); this is the rest.
    std::fprintf(stderr, "error: out of memory while running '%s' (%s)\n", argc > 1 ? argv[1] : "bsbr-bench",
                 "lower the sizes given: lengths, model sizes, threads");
    return 2;
  } catch (const dnnl::error& e) {
    // Invalid arguments are ours to get right; anything else (out of memory, an unsupported ISA or
    // shape) is the environment.
    if (e.status == dnnl_invalid_arguments) {
      std::fprintf(stderr, "internal error: oneDNN rejected the arguments: %s (a bug in bsbr-bench, please report it)\n", e.what());
      return 3;
    }
    std::fprintf(stderr, "error: oneDNN failed: %s (status %d)\n", e.what(), static_cast<int>(e.status));
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: unexpected %s: %s (a bug in bsbr-bench, please report it)\n", typeid(e).name(), e.what());
    return 3;
  } catch (...) {
    std::fprintf(stderr, "internal error: an exception of unknown type (a bug in bsbr-bench, please report it)\n");
    return 3;
  }
  return exit_code;
}
