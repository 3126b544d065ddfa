// The last events of a simulation run (operations, faults, deliveries),
// with simulated times, printed when an invariant breaks.
#ifndef KGR_TESTS_SIM_TRACE_H_
#define KGR_TESTS_SIM_TRACE_H_

#include <cstdint>
#include <cstdio>
#include <deque>
#include <string>

namespace kgr::sim {

class Trace {
 public:
  explicit Trace(size_t keep) : keep_(keep) {}
  // `t_ms`: simulated milliseconds since the start of the run.
  void Add(uint64_t t_ms, std::string what) {
    if (keep_ == 0) return;
    if (events_.size() == keep_) events_.pop_front();
    events_.push_back({t_ms, std::move(what)});
  }
  void Print(FILE* out) const {
    for (const auto& e : events_) {
      std::fprintf(out, "  %7llu.%03llu %s\n",
                   static_cast<unsigned long long>(e.t_ms / 1000),
                   static_cast<unsigned long long>(e.t_ms % 1000),
                   e.what.c_str());
    }
  }

 private:
  struct Event {
    uint64_t t_ms;
    std::string what;
  };
  size_t keep_;
  std::deque<Event> events_;
};

}  // namespace kgr::sim

#endif  // KGR_TESTS_SIM_TRACE_H_
