#include "kgr/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace kgr {

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds.first(std::min(bounds.size(), kMaxBuckets))) {}

Histogram::Histogram(const Histogram& other) : bounds_(other.bounds_) {
  *this = other;
}

Histogram& Histogram::operator=(const Histogram& other) {
  if (this == &other) return *this;
  bounds_ = other.bounds_;
  for (size_t i = 0; i < counts_.size(); ++i) {
    counts_[i].store(other.counts_[i].load(std::memory_order_relaxed),
                     std::memory_order_relaxed);
  }
  sum_.store(other.sum_.load(std::memory_order_relaxed),
             std::memory_order_relaxed);
  return *this;
}

void Histogram::Observe(double value) {
  // Few buckets: a linear scan beats a binary search.
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot s;
  s.bounds = bounds_;
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(total);
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", value);
    return buf;
  }
  // Bucket bounds read as written (0.0001, not 1e-04).
  auto r = std::fabs(value) >= 1e-6
               ? std::to_chars(buf, buf + sizeof buf, value,
                               std::chars_format::fixed)
               : std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, r.ptr);
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void MetricsText::Family(std::string_view name, Type type,
                         std::string_view help) {
  static constexpr const char* kTypeNames[] = {"counter", "gauge", "histogram"};
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  // HELP text escapes \ and newline.
  for (char c : help) {
    if (c == '\\') {
      text_ += "\\\\";
    } else if (c == '\n') {
      text_ += "\\n";
    } else {
      text_ += c;
    }
  }
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += kTypeNames[static_cast<int>(type)];
  text_ += '\n';
}

void MetricsText::Line(std::string_view name,
                       std::initializer_list<MetricLabel> labels,
                       std::string_view le, double value) {
  text_ += name;
  if (labels.size() > 0 || !le.empty()) {
    text_ += '{';
    bool first = true;
    for (const MetricLabel& l : labels) {
      if (!first) text_ += ',';
      first = false;
      text_ += l.name;
      text_ += "=\"";
      text_ += EscapeLabelValue(l.value);
      text_ += '"';
    }
    if (!le.empty()) {
      if (!first) text_ += ',';
      text_ += "le=\"";
      text_ += le;
      text_ += '"';
    }
    text_ += '}';
  }
  text_ += ' ';
  text_ += FormatMetricValue(value);
  text_ += '\n';
}

void MetricsText::Sample(std::string_view name, double value,
                         std::initializer_list<MetricLabel> labels) {
  Line(name, labels, {}, value);
}

void MetricsText::HistogramFamily(std::string_view name, std::string_view help,
                                  const Histogram::Snapshot& h) {
  Family(name, Type::kHistogram, help);
  const std::string base(name);
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    Line(base + "_bucket", {}, FormatMetricValue(h.bounds[i]),
         static_cast<double>(h.cumulative[i]));
  }
  Line(base + "_bucket", {}, "+Inf", static_cast<double>(h.count()));
  Line(base + "_sum", {}, {}, h.sum);
  Line(base + "_count", {}, {}, static_cast<double>(h.count()));
}

}  // namespace kgr
