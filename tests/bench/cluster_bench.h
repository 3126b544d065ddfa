// Pieces of kgr-bench --ks-instances (docs/performance.md, "KS cluster on
// etcd"): real `kgr-ks run` processes started and killed by PID, and the
// failover figures computed from the establishments' timestamps.
#ifndef KGR_TESTS_BENCH_CLUSTER_BENCH_H_
#define KGR_TESTS_BENCH_CLUSTER_BENCH_H_

#include <sys/types.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kgr/status.h"

namespace kgr::bench {

// utime + stime of the process or thread whose /proc stat file this is, in
// seconds (0 if it cannot be read).
double StatCpuSeconds(const std::string& stat_path);

// One `kgr-ks` process: `argv` from the binary on; stdout and stderr
// appended to `log_file`.
class KsProcess {
 public:
  KsProcess(std::vector<std::string> argv, std::string log_file);
  ~KsProcess();  // Stop()
  KsProcess(const KsProcess&) = delete;
  KsProcess& operator=(const KsProcess&) = delete;

  // Spawns it and waits up to `timeout_s` for a new "kgr-ks ready" line in
  // its log. UNAVAILABLE (with the log's last line) if it exits or is late.
  Status Start(double timeout_s);
  // SIGKILL (no clean shutdown: its MQTT and etcd connections just drop),
  // reaped.
  void Kill();
  // SIGTERM, SIGKILL after 3 s; reaped.
  void Stop();
  bool running() const { return pid_ > 0; }
  // utime + stime so far (0 when not running).
  double CpuSeconds() const;
  const std::string& log_file() const { return log_file_; }

 private:
  std::vector<std::string> argv_;
  std::string log_file_;
  pid_t pid_ = -1;
};

// One establishment: when it was issued and when it completed, in seconds
// from a common origin.
struct Span {
  double start_s = 0;
  double end_s = 0;
  bool ok = false;
};

// The failover figures of a run in which one instance was killed at
// `kill_s` (same origin as the spans), over `window_s` before and after:
//   gap_s: the longest time with no completed establishment in
//     [kill_s - window_s, kill_s + window_s] (gap_before_kill_s: the same
//     before the kill alone, what normal service looks like);
//   held_*: the establishments in flight at the kill (some of them held by
//     the killed instance): how many, and when the last of them completed
//     (retransmitted to a surviving instance), counted from the kill;
//   latency_ms p50/p99/max of the establishments that completed in the
//     window after the kill, and the same before it.
nlohmann::json FailoverFigures(const std::vector<Span>& spans, double kill_s,
                               double window_s);

// Copies the regular files and directories under `from` to `to` (created),
// modes kept.
Status CopyTree(const std::string& from, const std::string& to);

// "1,2,3" -> {1, 2, 3}, sorted, without repeats; each in 1..`max`.
bool ParseInstanceList(const std::string& s, int max, std::vector<int>* out);

// From etcd's /metrics at `host_port` (plain HTTP): the requests it served
// by method ("Txn", "Range", ...: grpc_server_handled_total, which the JSON
// gateway's requests go through) and its WAL fsyncs ("wal_fsyncs"). Empty
// if it does not answer.
std::map<std::string, double> EtcdCounters(const std::string& host_port);

// The three figures of /proc/loadavg, for the record.
nlohmann::json LoadAverage();

}  // namespace kgr::bench

#endif  // KGR_TESTS_BENCH_CLUSTER_BENCH_H_
