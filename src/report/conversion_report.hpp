// The conversion study's report: conversion_results.json (everything, machine-readable),
// conversion_report.md (the tables and plots a reader wants) and PNG plots (speed and memory vs
// length, per-layer fidelity, attention heat maps of one layer and head for both models), plus the
// same tables for the terminal. Built only from a StudyResults value.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "convert/study.hpp"
#include "report/console.hpp"

namespace bsbr {

nlohmann::json to_json(const StudyResults& r);
// The report's tables (console.hpp's ReportTable: render_text for the terminal, render_markdown).
std::vector<ReportTable> conversion_tables(const StudyResults& r);
std::string conversion_markdown(const StudyResults& r, const std::vector<std::string>& plots);
// Draws the PNGs into out_dir; returns their file names. Throws UserError if gnuplot is missing.
std::vector<std::string> draw_conversion_plots(const StudyResults& r, const std::string& out_dir);

// Writes conversion_results.json, conversion_report.md and (if plots) the PNGs into out_dir.
struct ReportFiles {
  std::string json, markdown;
  std::vector<std::string> plots;
};
ReportFiles write_conversion_report(const StudyResults& r, const std::string& out_dir, bool plots);

// Runs `study`, which fills `r` stage by stage (run_conversion_study(opts, r, ...)). When it stops
// early -- Interrupted (SIGINT / SIGTERM under an InterruptScope, also one that arrives after the
// study's last poll) or any exception of a later stage -- and r holds at least one quality row or
// speed point, they are written to out_dir/conversion_results.json (atomically) with
// "partial": true and "partial_reason" (what stopped it, and how many rows and points it holds);
// no Markdown, no plots. Then the exception goes on (exit 2, or 3 for a bug).
void keep_partial_study(StudyResults& r, const std::string& out_dir, const std::function<void()>& study);

}  // namespace bsbr
