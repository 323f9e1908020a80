// Subcommand registration. The CLI only parses and wires: each add_* declares its flags on the
// app and installs a callback that calls into the library and stores the exit code.
#pragma once
#include <CLI/CLI.hpp>

namespace bsbr::cli {

void add_compare(CLI::App& app, int& exit_code);
void add_forward(CLI::App& app, int& exit_code);
void add_analyze(CLI::App& app, int& exit_code);
void add_check(CLI::App& app, int& exit_code);
void add_targets(CLI::App& app, int& exit_code);
void add_convert(CLI::App& app, int& exit_code);
void add_ab(CLI::App& app, int& exit_code);
void add_lm(CLI::App& app, int& exit_code);

}  // namespace bsbr::cli
