#include "bench/cluster_bench.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "harness/net.h"

namespace kgr::bench {
namespace {

using Json = nlohmann::json;

// Occurrences of "kgr-ks ready" in the file, and its last non-empty line.
size_t ReadyLines(const std::string& path, std::string* last_line) {
  std::ifstream in(path);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    if (line.find("kgr-ks ready") != std::string::npos) ++n;
    if (!line.empty() && last_line != nullptr) *last_line = line;
  }
  return n;
}

double Round3(double x) { return std::round(x * 1000) / 1000; }

Json LatencyMs(std::vector<double> v) {
  if (v.empty())
    return Json{{"p50", nullptr}, {"p99", nullptr}, {"max", nullptr}};
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * (v.size() - 1) + 0.5);
    return Round3(v[std::min(i, v.size() - 1)]);
  };
  return Json{{"p50", at(0.5)}, {"p99", at(0.99)}, {"max", Round3(v.back())}};
}

// The longest interval between consecutive times in `t` (sorted), counting
// from `from` and up to `to`.
double LongestGap(const std::vector<double>& t, double from, double to) {
  double prev = from, gap = 0;
  for (double x : t) {
    if (x < from) continue;
    if (x > to) break;
    gap = std::max(gap, x - prev);
    prev = x;
  }
  return std::max(gap, to - prev);
}

}  // namespace

KsProcess::KsProcess(std::vector<std::string> argv, std::string log_file)
    : argv_(std::move(argv)), log_file_(std::move(log_file)) {}

KsProcess::~KsProcess() { Stop(); }

Status KsProcess::Start(double timeout_s) {
  const size_t before = ReadyLines(log_file_, nullptr);
  pid_ = harness::SpawnLogged(argv_, log_file_);
  if (pid_ <= 0) {
    pid_ = -1;
    return InternalError("cannot start " + argv_[0]);
  }
  auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    std::string last;
    if (ReadyLines(log_file_, &last) > before) return OkStatus();
    int st = 0;
    bool exited = ::waitpid(pid_, &st, WNOHANG) == pid_;
    double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
    if (exited || waited > timeout_s) {
      if (exited) pid_ = -1;
      Stop();
      return UnavailableError("kgr-ks " +
                              std::string(exited ? "exited" : "not ready") +
                              " (log " + log_file_ + "): " + last);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void KsProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int st = 0;
  ::waitpid(pid_, &st, 0);
  pid_ = -1;
}

void KsProcess::Stop() {
  if (pid_ <= 0) return;
  harness::StopProcess(pid_);
  pid_ = -1;
}

double StatCpuSeconds(const std::string& stat_path) {
  std::ifstream in(stat_path);
  std::string s((std::istreambuf_iterator<char>(in)),
                std::istreambuf_iterator<char>());
  size_t rp = s.rfind(')');
  if (rp == std::string::npos) return 0;
  std::istringstream rest(s.substr(rp + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Fields after the comm: state(3) ... utime(14) stime(15).
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / ::sysconf(_SC_CLK_TCK);
}

double KsProcess::CpuSeconds() const {
  if (pid_ <= 0) return 0;
  return StatCpuSeconds("/proc/" + std::to_string(pid_) + "/stat");
}

Json FailoverFigures(const std::vector<Span>& spans, double kill_s,
                     double window_s) {
  std::vector<double> ends;
  std::vector<double> lat_before, lat_after;
  size_t held = 0, held_failed = 0;
  double held_last = kill_s;
  for (const Span& s : spans) {
    if (s.ok) ends.push_back(s.end_s);
    const bool in_flight = s.start_s <= kill_s && s.end_s >= kill_s;
    if (in_flight) {
      ++held;
      if (!s.ok) ++held_failed;
      held_last = std::max(held_last, s.end_s);
    }
    if (!s.ok) continue;
    const double ms = (s.end_s - s.start_s) * 1000;
    if (s.end_s >= kill_s - window_s && s.end_s < kill_s) {
      lat_before.push_back(ms);
    } else if (s.end_s >= kill_s && s.end_s <= kill_s + window_s) {
      lat_after.push_back(ms);
    }
  }
  std::sort(ends.begin(), ends.end());
  double last_end = ends.empty() ? kill_s : ends.back();
  double to = std::min(kill_s + window_s, std::max(last_end, kill_s));
  Json j;
  j["kill_at_s"] = Round3(kill_s);
  j["window_s"] = Round3(window_s);
  j["gap_s"] = Round3(LongestGap(ends, kill_s - window_s, to));
  j["gap_before_kill_s"] = Round3(LongestGap(ends, kill_s - window_s, kill_s));
  j["held_at_kill"] = held;
  j["held_failed"] = held_failed;
  j["held_all_completed_after_s"] = Round3(held_last - kill_s);
  j["completed_before"] = lat_before.size();
  j["completed_after"] = lat_after.size();
  j["rate_before_per_s"] = Round3(lat_before.size() / window_s);
  j["rate_after_per_s"] = Round3(lat_after.size() / window_s);
  j["latency_ms_before"] = LatencyMs(lat_before);
  j["latency_ms_after"] = LatencyMs(lat_after);
  return j;
}

Status CopyTree(const std::string& from, const std::string& to) {
  std::error_code ec;
  std::filesystem::copy(from, to,
                        std::filesystem::copy_options::recursive |
                            std::filesystem::copy_options::copy_symlinks,
                        ec);
  if (ec)
    return InternalError("copy " + from + " to " + to + ": " + ec.message());
  return OkStatus();
}

bool ParseInstanceList(const std::string& s, int max, std::vector<int>* out) {
  out->clear();
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty() || item.size() > 3 ||
        item.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    int k = std::stoi(item);
    if (k < 1 || k > max) return false;
    out->push_back(k);
  }
  std::sort(out->begin(), out->end());
  out->erase(std::unique(out->begin(), out->end()), out->end());
  return !out->empty();
}

std::map<std::string, double> EtcdCounters(const std::string& host_port) {
  std::map<std::string, double> out;
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) return out;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return out;
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port =
      htons(static_cast<uint16_t>(std::atoi(host_port.c_str() + colon + 1)));
  ::inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr);
  std::string body;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string get =
        "GET /metrics HTTP/1.0\r\nHost: " + host_port + "\r\n\r\n";
    if (::write(fd, get.data(), get.size()) ==
        static_cast<ssize_t>(get.size())) {
      char buf[16384];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) body.append(buf, n);
    }
  }
  ::close(fd);
  std::istringstream in(body);
  std::string line;
  const std::string handled = "grpc_server_handled_total{";
  while (std::getline(in, line)) {
    const size_t sp = line.rfind(' ');
    if (sp == std::string::npos || line[0] == '#') continue;
    const double v = std::atof(line.c_str() + sp + 1);
    if (line.rfind("etcd_disk_wal_fsync_duration_seconds_count ", 0) == 0) {
      out["wal_fsyncs"] += v;
    } else if (line.rfind(handled, 0) == 0) {
      const size_t m = line.find("grpc_method=\"");
      if (m == std::string::npos) continue;
      const size_t from = m + 13, to = line.find('"', from);
      out[line.substr(from, to - from)] += v;
    }
  }
  return out;
}

Json LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double a = 0, b = 0, c = 0;
  in >> a >> b >> c;
  return Json::array({a, b, c});
}

}  // namespace kgr::bench
