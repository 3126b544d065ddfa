// Metrics: histograms with fixed buckets and the Prometheus text exposition
// format (version 0.0.4) that `--metrics-listen` serves (metrics_http.h).
// The metric names are documented in docs/metrics.md.
//
// Counters and gauges are plain integers kept by the component that counts
// (KeyServerStats, NodeClientStats): an increment on the hot path, no lock,
// no allocation. They are read where they are written, on the daemon's
// event loop, which is also where the exposition is rendered.
//
// Thread safety: Histogram is lock-free: Observe() is three relaxed atomic
// additions and may be called from any thread; a copy or Snapshot() reads
// each bucket atomically (not all of them at one instant). MetricsText is
// not thread-safe (one renderer per scrape).
#ifndef KGR_METRICS_H_
#define KGR_METRICS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kgr {

// Upper bounds (seconds) for latencies from 100 µs to 10 s.
inline constexpr double kLatencyBuckets[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

class Histogram {
 public:
  static constexpr size_t kMaxBuckets = 16;
  // `bounds`: ascending upper bounds (at most kMaxBuckets; static storage).
  // An observation above the last lands only in +Inf.
  explicit Histogram(std::span<const double> bounds = kLatencyBuckets);
  Histogram(const Histogram& other);
  Histogram& operator=(const Histogram& other);

  void Observe(double value);

  struct Snapshot {
    std::span<const double> bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (= count)
    double sum = 0;
    uint64_t count() const { return cumulative.back(); }
  };
  Snapshot Take() const;

 private:
  std::span<const double> bounds_;
  // counts_[i]: observations in (bounds_[i-1], bounds_[i]]; the last one
  // past the final bound: above every bound.
  std::array<std::atomic<uint64_t>, kMaxBuckets + 1> counts_{};
  std::atomic<double> sum_{0};
};

// One label of a sample: name="value" (the value is escaped).
struct MetricLabel {
  std::string_view name;
  std::string_view value;
};

// Builds one exposition: each family once, its HELP and TYPE lines first.
class MetricsText {
 public:
  enum class Type { kCounter, kGauge, kHistogram };

  // Starts a family (HELP and TYPE lines). `name` is [a-zA-Z_:][a-zA-Z0-9_:]*.
  void Family(std::string_view name, Type type, std::string_view help);
  // One sample of the current counter or gauge family.
  void Sample(std::string_view name, double value,
              std::initializer_list<MetricLabel> labels = {});
  // A family with one sample.
  void Counter(std::string_view name, std::string_view help, double value) {
    Family(name, Type::kCounter, help);
    Sample(name, value);
  }
  void Gauge(std::string_view name, std::string_view help, double value) {
    Family(name, Type::kGauge, help);
    Sample(name, value);
  }
  // A histogram family: name_bucket{le=...} (cumulative, with +Inf),
  // name_sum and name_count.
  void HistogramFamily(std::string_view name, std::string_view help,
                       const Histogram::Snapshot& h);

  const std::string& text() const { return text_; }

 private:
  void Line(std::string_view name, std::initializer_list<MetricLabel> labels,
            std::string_view le, double value);
  std::string text_;
};

// A sample value as the text format writes it: integers without a
// fraction, "+Inf", "-Inf", "NaN", else the shortest round-trip form.
std::string FormatMetricValue(double value);
// A label value with \, " and newline escaped.
std::string EscapeLabelValue(std::string_view value);

}  // namespace kgr

#endif  // KGR_METRICS_H_
