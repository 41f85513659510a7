// Figures through gnuplot: each figure is written as a data file plus a generated gnuplot
// script beside it, and gnuplot (an external program, not linked) renders both an SVG and
// a PNG. Keeping the .dat and .gp files lets anyone restyle a figure without rerunning
// the analysis that produced it.
#pragma once

#include <string>
#include <vector>

namespace h2o::plot {

enum class LineStyle { LinesPoints, Lines, Dashed, Dotted };

// One legend entry (none if the label is empty): points (x[i], y[i]). On a logarithmic axis, points with a value <= 0
// (or a non-finite value anywhere) are left out.
struct Series {
  std::string label;
  std::vector<double> x, y;
  LineStyle style = LineStyle::LinesPoints;
  std::string color;  // "#rrggbb"; empty = the palette colour for its index
};

struct LinePlot {
  std::string title;
  std::string x_label;  // with units, e.g. "KV budget (% of sequence)"
  std::string y_label;
  std::vector<Series> series;
  bool log_x = false;
  bool log_y = false;
  bool tight_x = false;  // x axis ends at the data (no rounding out to the next tic)
  std::string key_position = "top right";  // gnuplot `set key` placement ("outside right top", ...)
};

// A table of values drawn as coloured cells: rows are drawn bottom to top in index
// order (row 0 at the bottom), columns left to right.
struct Heatmap {
  std::string title;
  std::string x_label;  // what the columns are
  std::string y_label;  // what the rows are
  std::string value_label;  // colour-bar label
  int rows = 0, cols = 0;
  std::vector<double> values;  // [rows][cols], row-major
  std::vector<std::string> row_names, col_names;  // optional tic labels (empty: indices)
  bool show_values = true;     // print each cell's value in it (small tables)
  std::string value_format = "%.2f";  // printf format of the printed values
};

// Paths of everything a figure wrote.
struct Figure {
  std::string svg, png, script, data;
};

// gnuplot executable to run: a name looked up on PATH or a path.
struct GnuplotOptions {
  std::string program = "gnuplot";
  int width = 900, height = 560;  // pixels of the PNG and the SVG canvas
};

// Write <dir>/<name>.dat and <dir>/<name>.gp, run gnuplot in <dir>, and check that
// <dir>/<name>.svg and <dir>/<name>.png came out non-empty. The directory must exist.
// Throws h2o::Error when gnuplot is missing, fails (its first error line is quoted), or
// the figure has nothing to draw.
Figure render(const LinePlot& plot, const std::string& dir, const std::string& name, const GnuplotOptions& opts = {});
Figure render(const Heatmap& map, const std::string& dir, const std::string& name, const GnuplotOptions& opts = {});

// Text quoted for a gnuplot double-quoted string (backslashes, quotes, control bytes).
std::string gnuplot_quote(const std::string& text);

}  // namespace h2o::plot
