// gnuplot figures: line plots and heatmaps come out as real SVG and PNG files, and a
// missing or failing gnuplot is a clear h2o::Error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "common/error.h"
#include "integration/run_cli.h"
#include "plot/gnuplot.h"

namespace h2o::test {
namespace {

// A fresh directory per test (tests may run in parallel under ctest).
std::string fresh_dir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "h2o_plot_" + std::to_string(::getpid()) + "_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void expect_svg_and_png(const plot::Figure& f) {
  const std::string svg = read_text_file(f.svg);
  EXPECT_NE(svg.find("<svg"), std::string::npos) << f.svg;
  const std::string png = read_text_file(f.png);
  ASSERT_GE(png.size(), 8u) << f.png;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << f.png;
  EXPECT_FALSE(read_text_file(f.script).empty());
  EXPECT_FALSE(read_text_file(f.data).empty());
}

plot::LinePlot two_lines() {
  plot::LinePlot p;
  p.title = "Perplexity vs \"budget\"";  // quotes must survive the script
  p.x_label = "KV budget (% of sequence)";
  p.y_label = "perplexity";
  p.series.push_back({"h2o_1 {x}", {5, 10, 20, 50}, {9.1, 7.2, 6.0, 5.8}, plot::LineStyle::LinesPoints, ""});
  p.series.push_back({"full", {5, 50}, {5.7, 5.7}, plot::LineStyle::Dashed, "#000000"});
  return p;
}

TEST(Plot, LinePlotWritesSvgAndPng) {
  const std::string dir = fresh_dir("line");
  const plot::Figure f = plot::render(two_lines(), dir, "fig");
  expect_svg_and_png(f);
  EXPECT_EQ(f.svg, dir + "/fig.svg");
  EXPECT_NE(read_text_file(f.svg).find("h2o_1 {x}"), std::string::npos);  // legend text, not enhanced markup
}

TEST(Plot, LogLogPlotSkipsPointsItCannotDraw) {
  const std::string dir = fresh_dir("loglog");
  plot::LinePlot p;
  p.title = "rank";
  p.x_label = "rank";
  p.y_label = "score";
  p.log_x = p.log_y = true;
  p.series.push_back({"scores", {1, 2, 3, 4, 5}, {10, 5, 0, -1, NAN}, plot::LineStyle::Lines, ""});
  const plot::Figure f = plot::render(p, dir, "ll");
  expect_svg_and_png(f);
  // Only the two positive points reach the data file.
  const std::string dat = read_text_file(f.data);
  EXPECT_NE(dat.find("1 10\n2 5\n"), std::string::npos) << dat;
  EXPECT_EQ(dat.find("3 0"), std::string::npos) << dat;
}

TEST(Plot, HeatmapWritesSvgAndPngForAnySize) {
  const std::string dir = fresh_dir("heat");
  plot::Heatmap m;
  m.title = "sparsity";
  m.x_label = "head";
  m.y_label = "layer";
  m.value_label = "share";
  m.rows = 2;
  m.cols = 3;
  m.values = {0.1, 0.5, 0.9, 0.3, NAN, 0.7};
  m.row_names = {"layer 0", "layer 1"};
  expect_svg_and_png(plot::render(m, dir, "heat"));
  // One cell: `with image` could not draw it, the box cells can.
  plot::Heatmap one = m;
  one.rows = one.cols = 1;
  one.values = {0.42};
  one.row_names.clear();
  expect_svg_and_png(plot::render(one, dir, "one"));
}

TEST(Plot, BadInputIsAnError) {
  const std::string dir = fresh_dir("bad");
  plot::LinePlot empty;
  EXPECT_THROW(plot::render(empty, dir, "e"), Error);
  plot::LinePlot mismatched = two_lines();
  mismatched.series[0].y.pop_back();
  EXPECT_THROW(plot::render(mismatched, dir, "m"), Error);
  plot::Heatmap m;
  m.rows = 2;
  m.cols = 2;
  m.values = {1, 2, 3};
  EXPECT_THROW(plot::render(m, dir, "h"), Error);
  EXPECT_THROW(plot::render(two_lines(), dir + "/no/such/dir", "x"), Error);
}

TEST(Plot, MissingGnuplotIsAClearError) {
  const std::string dir = fresh_dir("missing");
  plot::GnuplotOptions o;
  o.program = "h2o-no-such-gnuplot";
  try {
    plot::render(two_lines(), dir, "fig", o);
    FAIL() << "expected h2o::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gnuplot"), std::string::npos) << e.what();
  }
}

TEST(Plot, FailingGnuplotIsAClearError) {
  const std::string dir = fresh_dir("failing");
  plot::GnuplotOptions o;
  o.program = "false";  // runs, exits 1, writes nothing
  try {
    plot::render(two_lines(), dir, "fig", o);
    FAIL() << "expected h2o::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gnuplot failed"), std::string::npos) << e.what();
  }
}

TEST(Plot, QuoteEscapesGnuplotSpecials) {
  EXPECT_EQ(plot::gnuplot_quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
  EXPECT_EQ(plot::gnuplot_quote(std::string("x\x01y")), "\"x\\001y\"");
}

}  // namespace
}  // namespace h2o::test
