// A minimal generic gnuplot runner: a script plus the data files it reads -> one PNG, written
// atomically (rendered to a temp file beside the target, then renamed). gnuplot (Debian package
// gnuplot-nox, installed by tools/setup.sh) runs as a child process; if it is missing or the
// script fails, the error names the plot and gnuplot's first complaint.
#pragma once
#include <string>
#include <vector>

namespace bsbr {

struct PlotFile {
  std::string name;     // the name the script reads it by, e.g. "time.dat"
  std::string content;  // whitespace-separated columns (gnuplot's data format)
};

// True if a `gnuplot` executable is on PATH.
bool gnuplot_available();

// Renders `script` to a width x height PNG at png_path. The script must not set the terminal or
// the output (they are prepended) and reads its data files by their bare names. Throws UserError.
void render_png(const std::string& png_path, const std::string& script, const std::vector<PlotFile>& data, int width = 900, int height = 600);

}  // namespace bsbr
