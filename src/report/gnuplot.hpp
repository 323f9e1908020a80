// A small, generic gnuplot runner: a script plus inline data in, a PNG file out (written
// atomically). Used by analyze's plots and meant for any other plot (heat maps, sweeps): it knows
// nothing about what is plotted. gnuplot is a Debian package (gnuplot-nox, tools/setup.sh).
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace bsbr {

struct PngSize {
  int width = 1000, height = 650;  // pixels
};

class Gnuplot {
 public:
  // Locates `executable` (a name on PATH or a path) and picks its PNG terminal: pngcairo
  // (antialiased) if `gnuplot -e "set terminal"` lists it, else png. nullopt if gnuplot cannot run
  // or has no PNG terminal.
  static std::optional<Gnuplot> find(const std::string& executable = "gnuplot");
  // As find, but a missing gnuplot is a UserError saying how to install it.
  static Gnuplot require(const std::string& executable = "gnuplot");

  const std::string& terminal() const { return terminal_; }

  // Runs `script` (gnuplot commands; inline data as datablocks, see gnuplot_datablock) with the
  // terminal set to a PNG of `size` (UTF-8 text, enhanced text mode off so names print literally;
  // `set termoption enhanced` turns it on) and writes it to `png_path` atomically (parent directories are
  // created). Do not set terminal or output in the script. Throws UserError with gnuplot's first
  // error line if the script fails.
  void render_png(const std::string& script, const std::string& png_path, PngSize size = {}) const;

 private:
  Gnuplot(std::string executable, std::string terminal) : executable_(std::move(executable)), terminal_(std::move(terminal)) {}
  std::string executable_;
  std::string terminal_;  // "pngcairo" or "png"
};

// Inline data for a script: "$name << EOD\n" + rows + "EOD\n"; rows are lines of
// whitespace-separated columns (a blank line separates gnuplot data blocks/scans).
std::string gnuplot_datablock(const std::string& name, const std::string& rows);
// The one way text reaches a gnuplot script. gnuplot runs `...` inside double-quoted strings, so
// text from input files (model names, file names) must be inert: gnuplot_safe_text keeps letters,
// digits, space, harmless punctuation, newlines and well-formed UTF-8, and turns every other byte
// (` \ " ' @ $, control characters) into '?'. gnuplot_quote wraps that in a double-quoted literal
// (newline as \n) for titles and labels. Paths never go into a script (render_png works in a
// scratch directory with relative names).
std::string gnuplot_safe_text(const std::string& text);
std::string gnuplot_quote(const std::string& text);

}  // namespace bsbr
