#include "kgr/metrics.h"

#include <gtest/gtest.h>

#include <thread>

namespace kgr {
namespace {

TEST(HistogramTest, BucketsAreCumulativeWithInfAndSum) {
  static constexpr double kBounds[] = {0.1, 1, 10};
  Histogram h(kBounds);
  h.Observe(0.05);
  h.Observe(0.1);  // on a bound: in that bucket (le)
  h.Observe(5);
  h.Observe(100);  // above every bound: only +Inf
  Histogram::Snapshot s = h.Take();
  ASSERT_EQ(s.cumulative.size(), 4u);
  EXPECT_EQ(s.cumulative[0], 2u);
  EXPECT_EQ(s.cumulative[1], 2u);
  EXPECT_EQ(s.cumulative[2], 3u);
  EXPECT_EQ(s.count(), 4u);
  EXPECT_DOUBLE_EQ(s.sum, 105.15);
}

TEST(HistogramTest, ObserveFromManyThreadsLosesNothing) {
  Histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) h.Observe(0.001);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.Take().count(), 40000u);
}

TEST(HistogramTest, CopyKeepsCounts) {
  Histogram h;
  h.Observe(0.002);
  Histogram copy = h;
  h.Observe(0.002);
  EXPECT_EQ(copy.Take().count(), 1u);
  EXPECT_EQ(h.Take().count(), 2u);
}

TEST(MetricsTextTest, CounterAndLabelledFamily) {
  MetricsText m;
  m.Counter("kgr_x_total", "Things that happened.", 3);
  m.Family("kgr_drops_total", MetricsText::Type::kCounter, "Drops by reason.");
  m.Sample("kgr_drops_total", 2, {{"reason", "bad_mac"}});
  m.Sample("kgr_drops_total", 0, {{"reason", "replay"}, {"lane", "ac"}});
  EXPECT_EQ(m.text(),
            "# HELP kgr_x_total Things that happened.\n"
            "# TYPE kgr_x_total counter\n"
            "kgr_x_total 3\n"
            "# HELP kgr_drops_total Drops by reason.\n"
            "# TYPE kgr_drops_total counter\n"
            "kgr_drops_total{reason=\"bad_mac\"} 2\n"
            "kgr_drops_total{reason=\"replay\",lane=\"ac\"} 0\n");
}

TEST(MetricsTextTest, HistogramHasBucketsSumAndCount) {
  static constexpr double kBounds[] = {0.005, 0.5};
  Histogram h(kBounds);
  h.Observe(0.001);
  h.Observe(1);
  MetricsText m;
  m.HistogramFamily("kgr_lat_seconds", "Latency.", h.Take());
  EXPECT_EQ(m.text(),
            "# HELP kgr_lat_seconds Latency.\n"
            "# TYPE kgr_lat_seconds histogram\n"
            "kgr_lat_seconds_bucket{le=\"0.005\"} 1\n"
            "kgr_lat_seconds_bucket{le=\"0.5\"} 1\n"
            "kgr_lat_seconds_bucket{le=\"+Inf\"} 2\n"
            "kgr_lat_seconds_sum 1.001\n"
            "kgr_lat_seconds_count 2\n");
}

TEST(MetricsTextTest, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  MetricsText m;
  m.Gauge("g", "line1\nline2 \\", 1.5);
  EXPECT_EQ(m.text(), "# HELP g line1\\nline2 \\\\\n# TYPE g gauge\ng 1.5\n");
}

TEST(MetricsTextTest, FormatsSpecialValues) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(18446744073709.0), "18446744073709");
  EXPECT_EQ(FormatMetricValue(0.25), "0.25");
  EXPECT_EQ(FormatMetricValue(0.0001), "0.0001");
  EXPECT_EQ(FormatMetricValue(0.00025), "0.00025");
  EXPECT_EQ(FormatMetricValue(1e-9), "1e-09");
  EXPECT_EQ(FormatMetricValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatMetricValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatMetricValue(0.0 / 0.0), "NaN");
}

}  // namespace
}  // namespace kgr
