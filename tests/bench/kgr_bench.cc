// kgr-bench: session key establishments per second and their latency, for
// the real system (KeyServer + NodeClients over a TLS Mosquitto, real
// crypto, durable gen_keys) and, in the same run, for a bare six-message
// pattern of the same sizes through the same broker connections. Prints one
// JSON object on stdout (logs go to stderr). See docs/performance.md.
//
// Everything runs on 127.0.0.1; every server it starts is stopped by PID;
// every loop is bounded by --count and --duration.
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench/cluster_bench.h"
#include "bench/counting_fs.h"
#include "bench/group_bench.h"
#include "bench/tap_transport.h"
#include "harness/etcd.h"
#include "harness/mosquitto.h"
#include "harness/net.h"
#include "harness/swtpm.h"
#include "kgr/cli.h"
#include "kgr/clock.h"
#include "kgr/cluster.h"
#include "kgr/credentials.h"
#include "kgr/event_loop.h"
#include "kgr/frame.h"
#include "kgr/key_server.h"
#include "kgr/mqtt.h"
#include "kgr/node_client.h"
#include "kgr/store.h"
#include "kgr/topic.h"
#include "kgr/tpm.h"

extern char** environ;

namespace kgr::bench {
namespace {

using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

constexpr char kUsage[] =
    R"(kgr-bench: key establishments/s and latency of kgr against the bare broker.

usage: kgr-bench [flags]

  --nodes N             simulated nodes (even; pairs are (2i, 2i+1))  [32]
  --window W            establishments in flight (<= N/2)              [16]
  --count C             measured establishments                        [10000]
  --duration S          stop issuing after S seconds (0: count only)   [0]
  --warmup C            unmeasured establishments first                [200]
  --renew               renewals (every pair gets a key during warm-up)
  --qos Q               MQTT QoS of every client (0, 1, 2)             [1]
  --mqtt-client C       client library of every transport: paho or
                        mosquitto (libmosquitto)                  [mosquitto]
  --tls on|off          TLS listener (default) or a plain one          [on]
  --broker HOST:PORT    use this broker instead of starting one; needs
  --pki DIR             its KED CA dir (ca.crt, ca.key: provisioning/make-ca.sh)
  --tcti T              KS TPM: "none" (software store) or a TCTI      [none]
  --swtpm               start a swtpm for the KS TPM
  --node-loops L        event loop threads for the simulated nodes    [2]
  --node-dir DIR        parent of the nodes' state dirs             [/dev/shm]
  --ks-dir DIR          parent of the KS state dir (real disk)        [/tmp]
  --node-frames-per-s R KS per-node rate limit (0: off)               [0]
  --broker-cpu C        pin the broker it starts to CPU C (how thread
                        placement moves the bare pattern: see
                        docs/performance.md)                     [not pinned]
  --scale-nodes K       add K registered nodes to node_desc; measure the
                        kgr-ks cold start and RSS with them
  --ks-binary PATH      kgr-ks for the cold start  [build dir ks-node/kgr-ks]
  --no-bare             skip the bare baseline
  --rounds R            (real, bare) pairs run back to back; the headline
                        rates and ratio are their medians              [5]
  --etcd                then the same rounds with the KS state on etcd
                        (a 1-member etcd the bench starts under --ks-dir):
                        "etcd" in the output, with the ratio to the files
  --state URL           the same on this etcd instead (etcd://h:p/prefix)
  --ks-instances LIST   with --etcd or --state: real kgr-ks processes
                        instead, a file-state KS then K instances on etcd
                        for each K of LIST (e.g. 1,2,3; at most 8), then
                        the failover run: "cluster" in the output
  --failover-s S        failover run of the largest K (>= 2): S seconds of
                        load, one instance SIGKILLed at S/3 (0: none)  [12]
  --log-level L         spdlog level for the library                  [warn]
  --keep                keep the temporary directories
  --groups              group rekeying instead (kgr-bench --groups --help)
  --help
)";

struct Args {
  int nodes = 32;
  int window = 16;
  uint64_t count = 10000;
  double duration_s = 0;
  uint64_t warmup = 200;
  bool renew = false;
  int qos = 1;
  MqttClient client = MqttClient::kMosquitto;
  bool tls = true;
  std::string broker, pki;
  std::string tcti = "none";
  bool swtpm = false;
  int node_loops = 2;
  std::string node_dir = "/dev/shm";
  std::string ks_dir = "/tmp";
  double node_frames_per_s = 0;
  int broker_cpu = -1;  // -1: not pinned
  uint64_t scale_nodes = 0;
  std::string ks_binary = std::string(KGR_BINARY_DIR) + "/ks-node/kgr-ks";
  bool bare = true;
  int rounds = 5;
  std::string log_level = "warn";
  bool etcd = false;
  std::string state;
  std::vector<int> ks_instances;  // empty: the KS in this process
  double failover_s = 12;
  bool keep = false;
  std::string command_line;
};

bool ParseArgs(int argc, char** argv, Args* a, std::string* error) {
  for (int i = 0; i < argc; ++i) {
    if (i) a->command_line += ' ';
    a->command_line += argv[i];
  }
  auto num = [&](const std::string& v, auto* out) {
    try {
      size_t pos = 0;
      double d = std::stod(v, &pos);
      if (pos != v.size() || d < 0) return false;
      *out = static_cast<std::remove_pointer_t<decltype(out)>>(d);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  };
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    static const std::set<std::string> kBool = {
        "--renew", "--swtpm", "--no-bare", "--keep", "--etcd", "--help"};
    if (kBool.count(f)) {
      if (f == "--renew") a->renew = true;
      if (f == "--swtpm") a->swtpm = true;
      if (f == "--no-bare") a->bare = false;
      if (f == "--keep") a->keep = true;
      if (f == "--etcd") a->etcd = true;
      if (f == "--help") {
        std::fputs(kUsage, stdout);
        std::exit(0);
      }
      continue;
    }
    if (i + 1 >= argc) {
      *error = f + " needs a value";
      return false;
    }
    std::string v = argv[++i];
    bool ok = true;
    if (f == "--nodes")
      ok = num(v, &a->nodes);
    else if (f == "--window")
      ok = num(v, &a->window);
    else if (f == "--count")
      ok = num(v, &a->count);
    else if (f == "--duration")
      ok = num(v, &a->duration_s);
    else if (f == "--warmup")
      ok = num(v, &a->warmup);
    else if (f == "--qos")
      ok = num(v, &a->qos) && a->qos <= 2;
    else if (f == "--mqtt-client") {
      auto c = ParseMqttClient(v);
      ok = c.ok();
      if (ok) a->client = *c;
    } else if (f == "--tls") {
      ok = v == "on" || v == "off";
      a->tls = v == "on";
    } else if (f == "--broker")
      a->broker = v;
    else if (f == "--pki")
      a->pki = v;
    else if (f == "--tcti")
      a->tcti = v;
    else if (f == "--rounds")
      ok = num(v, &a->rounds) && a->rounds >= 1;
    else if (f == "--node-loops")
      ok = num(v, &a->node_loops) && a->node_loops > 0;
    else if (f == "--node-dir")
      a->node_dir = v;
    else if (f == "--ks-dir")
      a->ks_dir = v;
    else if (f == "--node-frames-per-s")
      ok = num(v, &a->node_frames_per_s);
    else if (f == "--broker-cpu")
      ok = num(v, &a->broker_cpu) && a->broker_cpu < CPU_SETSIZE;
    else if (f == "--scale-nodes")
      ok = num(v, &a->scale_nodes);
    else if (f == "--ks-binary")
      a->ks_binary = v;
    else if (f == "--state") {
      a->state = v;
      ok = IsEtcdStateUrl(v);
    } else if (f == "--ks-instances")
      ok = ParseInstanceList(v, 8, &a->ks_instances);
    else if (f == "--failover-s")
      ok = num(v, &a->failover_s);
    else if (f == "--log-level")
      a->log_level = v;
    else {
      *error = "unknown flag " + f;
      return false;
    }
    if (!ok) {
      *error = "bad value '" + v + "' for " + f;
      return false;
    }
  }
  if (a->nodes < 2 || a->nodes % 2 != 0) {
    *error = "--nodes must be even and >= 2";
    return false;
  }
  if (a->window < 1 || a->window > a->nodes / 2) {
    *error = "--window must be in 1..nodes/2";
    return false;
  }
  if (!a->broker.empty() && a->tls && a->pki.empty()) {
    *error = "--broker with TLS needs --pki DIR (the broker's CA)";
    return false;
  }
  if (a->broker_cpu >= 0 && !a->broker.empty()) {
    *error = "--broker-cpu pins only a broker kgr-bench starts";
    return false;
  }
  if (!a->ks_instances.empty()) {
    if (!a->etcd && a->state.empty()) {
      *error = "--ks-instances needs --etcd or --state";
      return false;
    }
    // The instances are copies of one KS state dir (its software TPM).
    if (a->swtpm || a->tcti != "none") {
      *error = "--ks-instances runs kgr-ks on --tcti none only";
      return false;
    }
    if (!a->tls || (!a->broker.empty() && a->pki.empty())) {
      *error = "--ks-instances needs TLS certificates for kgr-ks";
      return false;
    }
  }
  if (a->swtpm && a->tcti != "none") {
    *error = "--swtpm and --tcti are exclusive";
    return false;
  }
  return true;
}

// ---- measurements ----

double SecondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

pid_t GetTid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// utime + stime of /proc/<path>/stat in seconds; 0 if unreadable.
double ThreadCpu(pid_t tid) {
  return StatCpuSeconds("/proc/self/task/" + std::to_string(tid) + "/stat");
}

double ProcessCpu() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

// A "VmXXX:" value of /proc/<pid>/status in kB (-1 if absent).
long StatusKb(const std::string& pid, const std::string& key) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      return std::atol(line.c_str() + key.size() + 1);
    }
  }
  return -1;
}

// CPU seconds of this process's threads, summed by thread name.
std::map<std::string, double> CpuByThreadName() {
  std::map<std::string, double> out;
  const std::string dir = "/proc/" + std::to_string(::getpid()) + "/task";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream c(dir + "/" + e->d_name + "/comm");
    std::string name;
    std::getline(c, name);
    out[name] += StatCpuSeconds(dir + "/" + e->d_name + "/stat");
  }
  ::closedir(d);
  return out;
}

Json Percentiles(std::vector<double> v) {
  if (v.empty())
    return Json{
        {"p50", nullptr}, {"p90", nullptr}, {"p99", nullptr}, {"max", nullptr}};
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * (v.size() - 1) + 0.5);
    return std::round(v[std::min(i, v.size() - 1)] * 1000) / 1000;
  };
  double sum = 0;
  for (double x : v) sum += x;
  return Json{{"p50", at(0.50)},
              {"p90", at(0.90)},
              {"p99", at(0.99)},
              {"max", std::round(v.back() * 1000) / 1000},
              {"mean", std::round(sum / v.size() * 1000) / 1000}};
}

double Round(double x, double unit = 1000) {
  return std::round(x * unit) / unit;
}

Json Machine() {
  Json m;
  m["nproc"] = std::thread::hardware_concurrency();
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      m["cpu_model"] = line.substr(line.find(':') + 2);
      break;
    }
  }
  utsname u{};
  if (::uname(&u) == 0) m["kernel"] = std::string(u.release);
  m["mem_total_kb"] = [] {
    std::ifstream mi("/proc/meminfo");
    std::string k;
    long v = 0;
    mi >> k >> v;
    return v;
  }();
  return m;
}

std::string FsType(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> p(
      ::popen(("stat -f -c %T " + path + " 2>/dev/null").c_str(), "r"),
      ::pclose);
  char buf[64] = {0};
  if (p && std::fgets(buf, sizeof buf, p.get())) {
    std::string s(buf);
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }
  return "unknown";
}

std::string MakeDirUnder(const std::string& parent, const std::string& tag) {
  std::string t = parent + "/kgr-bench-" + tag + "-XXXXXX";
  std::vector<char> buf(t.begin(), t.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) return "";
  return buf.data();
}

// ---- a plain (non-TLS) Mosquitto for --tls off ----

class PlainMosquitto {
 public:
  explicit PlainMosquitto(std::string dir) : dir_(std::move(dir)) {}
  ~PlainMosquitto() { Stop(); }
  Status Start() {
    ::chmod(dir_.c_str(), 0755);
    port_ = harness::FreeLoopbackPort();
    std::ofstream c(dir_ + "/mosquitto.conf");
    // Same limits as broker-config/mosquitto.conf.in, no TLS, no ACL.
    c << "per_listener_settings false\nallow_anonymous true\n"
         "persistence false\nmax_inflight_messages 20\n"
         "max_queued_messages 1000\nmax_packet_size 65536\n"
         "set_tcp_nodelay true\nlog_dest stderr\nlog_type error\n"
         "log_type warning\nlistener "
      << port_ << " 127.0.0.1\nprotocol mqtt\n";
    c.close();
    std::string log = dir_ + "/mosquitto.log";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    std::string conf = dir_ + "/mosquitto.conf";
    const char* argv[] = {"/usr/sbin/mosquitto", "-c", conf.c_str(), nullptr};
    int rc = ::posix_spawn(&pid_, argv[0], &fa, nullptr,
                           const_cast<char**>(argv), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      return InternalError("cannot start mosquitto");
    }
    if (!harness::WaitForPort(port_, 10000)) {
      return UnavailableError("plain mosquitto did not listen");
    }
    return OkStatus();
  }
  void Stop() {
    if (pid_ > 0) harness::StopProcess(pid_);
    pid_ = -1;
  }
  int port() const { return port_; }
  int pid() const { return pid_; }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  int port_ = -1;
};

// ---- the simulated world ----

struct SimNode {
  uint32_t n_id = 0;
  std::string cn;
  std::string dir;
  std::string topic2;  // full broker topic of its TOPIC2
  int loop = 0;
  SecretBytes ntag;
  std::unique_ptr<Tpm> tpm;
  std::unique_ptr<SesKeysStore> ses;
  TapTransport* tap = nullptr;
  std::unique_ptr<Transport> transport;
  std::unique_ptr<NodeClient> client;
};

struct LoopThread {
  EventLoop loop{1 << 20, 256 << 20};
  std::thread thread;
  std::atomic<pid_t> tid{0};
};

// Runs `fn(i)` for i in [0, n) on `threads` threads.
void ParallelFor(size_t n, int threads, const std::function<void(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < n; i = next++) fn(i);
    });
  }
  for (auto& t : pool) t.join();
}

// Waits (polling) until `done()` or `timeout_s`.
bool WaitFor(const std::function<bool()>& done, double timeout_s) {
  auto start = SteadyClock::now();
  while (!done()) {
    if (SecondsSince(start) > timeout_s) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Issues establishments on free pairs, at most `window` in flight, until
// `count` were issued or `duration_s` passed; thread-safe (callbacks come
// from several node loops).
class Driver {
 public:
  using Start = std::function<void(size_t pair, std::function<void(bool ok)>)>;
  Driver(size_t pairs, int window, uint64_t count, double duration_s,
         Start start)
      : window_(window),
        count_(count),
        duration_s_(duration_s),
        start_(std::move(start)) {
    for (size_t p = 0; p < pairs; ++p) free_.push_back(p);
  }

  // Returns when all issued establishments completed (or `timeout_s`).
  bool Run(double timeout_s) {
    t0_ = SteadyClock::now();
    {
      std::lock_guard<std::mutex> l(mu_);
      for (int i = 0; i < window_; ++i) IssueLocked();
    }
    std::unique_lock<std::mutex> l(mu_);
    bool ok = cv_.wait_for(l, std::chrono::duration<double>(timeout_s), [&] {
      return in_flight_ == 0 && (issued_ >= count_ || stopped_);
    });
    elapsed_s_ = std::chrono::duration<double>(t_last_ - t0_).count();
    stopped_ = true;
    return ok;
  }

  std::vector<double> latencies_ms() {
    std::lock_guard<std::mutex> l(mu_);
    return latencies_;
  }
  // Every establishment's issue and completion, from the start of Run().
  std::vector<Span> spans() {
    std::lock_guard<std::mutex> l(mu_);
    return spans_;
  }
  uint64_t completed() const { return ok_; }
  uint64_t errors() const { return errors_; }
  double elapsed_s() const { return elapsed_s_; }

 private:
  void IssueLocked() {
    if (stopped_ || issued_ >= count_ || free_.empty()) return;
    if (duration_s_ > 0 && SecondsSince(t0_) >= duration_s_) {
      stopped_ = true;
      return;
    }
    size_t pair = free_.front();
    free_.pop_front();
    ++issued_;
    ++in_flight_;
    auto t = SteadyClock::now();
    start_(pair, [this, pair, t](bool ok) {
      auto now = SteadyClock::now();
      std::lock_guard<std::mutex> l(mu_);
      --in_flight_;
      if (ok) {
        ++ok_;
        latencies_.push_back(
            std::chrono::duration<double, std::milli>(now - t).count());
      } else {
        ++errors_;
      }
      t_last_ = now;
      spans_.push_back({std::chrono::duration<double>(t - t0_).count(),
                        std::chrono::duration<double>(now - t0_).count(), ok});
      free_.push_back(pair);
      IssueLocked();
      if (in_flight_ == 0) cv_.notify_all();
    });
  }

  const int window_;
  const uint64_t count_;
  const double duration_s_;
  const Start start_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<size_t> free_;
  uint64_t issued_ = 0;
  int in_flight_ = 0;
  bool stopped_ = false;
  std::atomic<uint64_t> ok_{0}, errors_{0};
  std::vector<double> latencies_;
  std::vector<Span> spans_;
  SteadyClock::time_point t0_, t_last_;
  double elapsed_s_ = 0;
};

// ---- bare pattern ----
//
// The six messages of one establishment, with the sizes of the real frames,
// over the same connections and topics, no crypto, no storage:
//   A -> KS  (3, key_req)   KS -> A (4, key_ans) and KS -> B (5, not_req)
//   B -> KS  (6, not_ans)   KS -> A (7, conf_req)  A -> KS (8, conf_ans)
// A's establishment completes when it has sent 8 (as NodeClient completes
// after sending nnsk_conf_ans). Payload: [1, type, pair:u32, ...padding].
Bytes BareMessage(uint8_t type, uint32_t pair, uint32_t size) {
  Bytes b(std::max<uint32_t>(size, 6), 0);
  b[0] = 1;
  b[1] = type;
  for (int i = 0; i < 4; ++i)
    b[2 + i] = static_cast<uint8_t>(pair >> (24 - 8 * i));
  return b;
}
uint32_t BarePair(const Bytes& b) {
  if (b.size() < 6) return UINT32_MAX;
  return (uint32_t{b[2]} << 24) | (uint32_t{b[3]} << 16) |
         (uint32_t{b[4]} << 8) | b[5];
}

class Bench {
 public:
  explicit Bench(Args a) : a_(std::move(a)) {}
  ~Bench() { Teardown(); }

  StatusOr<Json> Run();
  struct CpuSample;

 private:
  Status StartBroker();
  StatusOr<MqttOptions> ClientOptions(const std::string& cn,
                                      const std::string& role);
  Status InitKsTpm();
  Status FillNodeDesc(uint64_t fillers, double* seconds);
  StatusOr<Json> ColdStart(const std::string& label);
  Status StartKs();
  Status StartNodes(Json* setup);
  Status RunReal(uint64_t count, double duration_s, bool renewal, bool measured,
                 Json* out);
  Status RunBare(uint64_t count, double duration_s, Json* out);
  // The KS again, on the same loop and transport, with its state on etcd
  // (node_desc copied there, the frame counter continued).
  Status SwitchKsToEtcd(Json* setup);
  // Warm-up and --rounds measured runs on the current KS.
  StatusOr<Json> RunStateRounds();
  // What the Driver calls to start one establishment of a pair.
  Driver::Start Establish(bool renewal);
  // --ks-instances (docs/performance.md, "KS cluster on etcd"): real kgr-ks
  // processes, a file-state one then K on etcd, then the failover run.
  Status RunCluster(Json* result);
  void StopInProcessKs();
  std::vector<std::string> KsRunArgv(const std::string& dir, int instance);
  Status MoveNodeDescToEtcd(Json* setup);
  // Starts the bench's own etcd (--etcd) or takes --state's URL: sets
  // etcd_url_ and records the start time; the state options of that URL.
  StatusOr<EtcdStateOptions> StartEtcd(Json* setup);
  Status StartInstances(size_t k);
  double InstancesCpu() const;
  double EtcdCpu() const;  // of the etcd this bench started; 0 without
  uint64_t NodeMessages() const;
  // One run against the kgr-ks processes; `during` runs on its own thread
  // from the start of the run (the failover's kill).
  Status RunExternal(uint64_t count, double duration_s,
                     const std::function<void()>& during, Json* out,
                     std::vector<Span>* spans);
  StatusOr<Json> ExternalRounds();
  StatusOr<Json> RunFailover();
  // PID of the broker this bench started; -1 with --broker.
  int BrokerPid() const;
  double BrokerCpu() const;
  CpuSample SampleCpu() const;
  void Teardown();

  Args a_;
  std::string root_, ks_dir_, node_root_;
  std::unique_ptr<harness::Mosquitto> mosq_;
  std::unique_ptr<PlainMosquitto> plain_;
  std::unique_ptr<harness::Swtpm> swtpm_;
  std::string host_ = "127.0.0.1";
  int port_ = 0;
  std::string tcti_;
  std::unique_ptr<Tpm> ks_tpm_;
  uint32_t ks_n_id_ = 0;
  std::unique_ptr<CountingFileSystem> ks_fs_, node_fs_;
  std::unique_ptr<NodeDescStore> nodes_store_;
  std::unique_ptr<GenKeysStore> gen_store_;
  std::unique_ptr<KsState> file_state_;
  std::unique_ptr<harness::Etcd> etcd_;
  std::unique_ptr<KsState> etcd_state_;
  // --ks-instances: the processes, their state dirs, the etcd state URL
  // and the shared subscription group.
  std::vector<std::unique_ptr<KsProcess>> ks_procs_;
  std::vector<std::string> instance_dirs_;
  std::string etcd_url_, share_group_;
  MqttOptions ks_mqtt_;
  KsState* state_ = nullptr;  // what the KS runs on
  TapTransport* ks_tap_ = nullptr;
  std::unique_ptr<Transport> ks_transport_;
  std::unique_ptr<KeyServer> ks_;
  std::string ks_topic1_;
  LoopThread ks_loop_;
  std::unique_ptr<KeyServerInbox> ks_inbox_;
  std::vector<std::unique_ptr<LoopThread>> node_loops_;
  std::vector<SimNode> nodes_;
  std::unordered_map<std::string, size_t> topic_to_node_;
  bool loops_running_ = false;
  // Bare mode state: per pair, the sizes of the six messages.
  std::array<uint32_t, 9> bare_size_{};
  std::vector<std::function<void(bool)>> bare_done_;  // per pair
  std::mutex bare_mu_;
};

Status Bench::StartBroker() {
  if (!a_.broker.empty()) {
    return SplitHostPort(a_.broker, &host_, &port_);
  }
  if (a_.tls) {
    mosq_ = std::make_unique<harness::Mosquitto>(root_ + "/mqtt");
    ::mkdir((root_ + "/mqtt").c_str(), 0755);
    KGR_RETURN_IF_ERROR(mosq_->Start());
    port_ = mosq_->port();
  } else {
    ::mkdir((root_ + "/mqtt").c_str(), 0755);
    plain_ = std::make_unique<PlainMosquitto>(root_ + "/mqtt");
    KGR_RETURN_IF_ERROR(plain_->Start());
    port_ = plain_->port();
  }
  if (a_.broker_cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(a_.broker_cpu, &set);
    if (::sched_setaffinity(BrokerPid(), sizeof set, &set) != 0) {
      return InvalidArgumentError("--broker-cpu " +
                                  std::to_string(a_.broker_cpu) + ": " +
                                  std::strerror(errno));
    }
  }
  return OkStatus();
}

int Bench::BrokerPid() const {
  return mosq_ ? mosq_->pid() : plain_ ? plain_->pid() : -1;
}

double Bench::BrokerCpu() const {
  int pid = BrokerPid();
  if (pid <= 0) return 0;
  return StatCpuSeconds("/proc/" + std::to_string(pid) + "/stat");
}

StatusOr<MqttOptions> Bench::ClientOptions(const std::string& cn,
                                           const std::string& role) {
  MqttOptions o;
  if (mosq_) {
    KGR_ASSIGN_OR_RETURN(o, mosq_->ClientOptions(cn, role));
  } else {
    o.host = host_;
    o.port = port_;
    o.client_id = cn;
    o.tls = a_.tls;
    if (a_.tls) {
      KGR_RETURN_IF_ERROR(harness::RunProvisioning(
          "issue-cert.sh", {a_.pki, cn, role}, root_ + "/provisioning.log"));
      o.ca_file = a_.pki + "/ca.crt";
      o.cert_file = a_.pki + "/" + cn + ".crt";
      o.key_file = a_.pki + "/" + cn + ".key";
    }
  }
  o.qos = a_.qos;
  o.client = a_.client;
  o.max_buffered_messages = 100000;
  return o;
}

Status Bench::InitKsTpm() {
  if (a_.swtpm) {
    swtpm_ = std::make_unique<harness::Swtpm>(root_ + "/swtpm");
    if (!swtpm_->Start()) return UnavailableError("swtpm: " + swtpm_->error());
    tcti_ = swtpm_->tcti();
  } else {
    tcti_ = a_.tcti;
  }
  TpmOptions o;
  o.tcti = tcti_;
  o.state_dir = ks_dir_;
  KGR_ASSIGN_OR_RETURN(ks_tpm_, OpenTpm(o));
  KGR_ASSIGN_OR_RETURN(
      OwnData own, InitKeyServer(*ks_tpm_, host_ + ":" + std::to_string(port_),
                                 kDefaultTopicPrefix));
  ks_n_id_ = own.identity.n_id;
  return OkStatus();
}

// node_desc: the simulated nodes (authorized, pairs (2i, 2i+1)) and
// `fillers` registered nodes with random keys, written in large batches.
Status Bench::FillNodeDesc(uint64_t fillers, double* seconds) {
  auto t0 = SteadyClock::now();
  KGR_ASSIGN_OR_RETURN(OwnData own, LoadOwnData(*ks_tpm_));
  StoreOptions write_only;
  write_only.decoded_records = 0;
  KGR_ASSIGN_OR_RETURN(
      auto store, NodeDescStore::Open(*ks_fs_, ks_dir_ + "/node_desc", own.nk,
                                      own.identity.n_id, write_only));
  std::set<uint32_t> used = {ks_n_id_};
  for (const auto& n : nodes_) used.insert(n.n_id);
  auto fresh_id = [&]() -> StatusOr<uint32_t> {
    for (;;) {
      KGR_ASSIGN_OR_RETURN(uint32_t id, RandomU32());
      if (id != 0 && used.insert(id).second) return id;
    }
  };
  std::vector<NodeDesc> batch;
  auto flush = [&]() -> Status {
    if (batch.empty()) return OkStatus();
    Status st = store->PutAll(batch);
    batch.clear();
    return st;
  };
  if (nodes_.empty()) {
    nodes_.resize(a_.nodes);
    for (int i = 0; i < a_.nodes; ++i) {
      KGR_ASSIGN_OR_RETURN(nodes_[i].n_id, fresh_id());
      nodes_[i].cn = NodeIdentity(nodes_[i].n_id);
    }
    for (int i = 0; i < a_.nodes; ++i) {
      NodeDesc d;
      d.n_id = nodes_[i].n_id;
      d.entry_no = static_cast<uint16_t>(i + 1);
      d.state = NodeState::kAuthorized;
      d.allowed_peers = {nodes_[i ^ 1].n_id};
      KGR_ASSIGN_OR_RETURN(d.ntag, RandomSecret(kRecordNtagSize));
      nodes_[i].ntag = d.ntag.Clone();
      batch.push_back(std::move(d));
    }
    KGR_RETURN_IF_ERROR(flush());
  }
  for (uint64_t i = 0; i < fillers; ++i) {
    NodeDesc d;
    KGR_ASSIGN_OR_RETURN(d.n_id, fresh_id());
    d.entry_no = static_cast<uint16_t>(a_.nodes + 1 + i);
    d.state = NodeState::kRegistered;
    d.nksk_version = 1;
    KGR_ASSIGN_OR_RETURN(d.ntag, RandomSecret(kRecordNtagSize));
    KGR_ASSIGN_OR_RETURN(d.nksk, SymmetricKeys::Generate());
    KGR_ASSIGN_OR_RETURN(TopicId t2, RandomTopicId());
    d.topic2 = t2;
    batch.push_back(std::move(d));
    if (batch.size() == 2000) KGR_RETURN_IF_ERROR(flush());
  }
  KGR_RETURN_IF_ERROR(flush());
  KGR_RETURN_IF_ERROR(store->file().Compact());
  *seconds = SecondsSince(t0);
  return OkStatus();
}

// Runs `kgr-ks run` on the KS state dir: time from spawn to its ready line,
// then its RSS; stops it by PID.
StatusOr<Json> Bench::ColdStart(const std::string& label) {
  if (::access(a_.ks_binary.c_str(), X_OK) != 0) {
    return NotFoundError("no kgr-ks at " + a_.ks_binary + " (--ks-binary)");
  }
  if (!mosq_ && a_.pki.empty()) {
    return FailedPreconditionError("cold start needs TLS certificates");
  }
  KGR_ASSIGN_OR_RETURN(MqttOptions ko, ClientOptions("ks", "ks"));
  ks_tpm_.reset();  // a swtpm serves one client at a time
  int out[2];
  if (::pipe(out) != 0) return InternalError("pipe");
  std::string log = root_ + "/kgr-ks-" + label + ".log";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> argv = {
      a_.ks_binary,  "run",
      "--state-dir", ks_dir_,
      "--tcti",      tcti_,
      "--broker",    host_ + ":" + std::to_string(port_),
      "--ca",        ko.ca_file,
      "--cert",      ko.cert_file,
      "--key",       ko.key_file,
      "--log-level", "warn"};
  std::vector<char*> cargv;
  for (auto& s : argv) cargv.push_back(s.data());
  cargv.push_back(nullptr);
  pid_t pid = -1;
  auto t0 = SteadyClock::now();
  int rc = ::posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    return InternalError("cannot start kgr-ks");
  }
  // Read its stdout until the ready line (bounded: 60 s).
  std::string got;
  double ready_s = -1;
  ::fcntl(out[0], F_SETFL, O_NONBLOCK);
  while (SecondsSince(t0) < 60) {
    char buf[512];
    ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n > 0) {
      got.append(buf, n);
      if (got.find("kgr-ks ready") != std::string::npos) {
        ready_s = SecondsSince(t0);
        break;
      }
    } else if (n == 0) {
      break;
    } else {
      int st = 0;
      if (::waitpid(pid, &st, WNOHANG) == pid) {
        pid = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  ::close(out[0]);
  Json j;
  j["ready_ms"] = ready_s < 0 ? Json(nullptr) : Json(Round(ready_s * 1000, 10));
  if (pid > 0) {
    std::string p = std::to_string(pid);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    j["rss_kb"] = StatusKb(p, "VmRSS");
    j["peak_rss_kb"] = StatusKb(p, "VmHWM");
    j["cpu_s_to_ready_plus_200ms"] =
        Round(StatCpuSeconds("/proc/" + p + "/stat"));
    harness::StopProcess(pid);
  }
  if (ready_s < 0) {
    return UnavailableError("kgr-ks did not become ready; log " + log);
  }
  TpmOptions o;
  o.tcti = tcti_;
  o.state_dir = ks_dir_;
  KGR_ASSIGN_OR_RETURN(ks_tpm_, OpenTpm(o));
  return j;
}

Status Bench::StartKs() {
  KGR_ASSIGN_OR_RETURN(OwnData own, LoadOwnData(*ks_tpm_));
  KGR_ASSIGN_OR_RETURN(Bytes kedk, ks_tpm_->KedkPublic());
  KGR_RETURN_IF_ERROR(MixTpmEntropy(*ks_tpm_));
  StoreOptions nodes_o;
  nodes_o.decoded_records = 0;  // as kgr-ks: the KeyServer caches entries
  KGR_ASSIGN_OR_RETURN(
      nodes_store_, NodeDescStore::Open(*ks_fs_, ks_dir_ + "/node_desc", own.nk,
                                        own.identity.n_id, nodes_o));
  KGR_ASSIGN_OR_RETURN(
      gen_store_, GenKeysStore::Open(*ks_fs_, ks_dir_ + "/gen_keys", own.nk,
                                     own.identity.n_id));
  KGR_ASSIGN_OR_RETURN(MqttOptions mo, ClientOptions("ks", "ks"));
  KGR_ASSIGN_OR_RETURN(auto inner, NewMqttTransport(mo));
  auto tap = std::make_unique<TapTransport>(std::move(inner));
  ks_tap_ = tap.get();
  ks_transport_ = std::move(tap);
  KeyServerOptions ko;
  ko.node_frames_per_s = a_.node_frames_per_s;  // 0: no limit
  ko.node_burst = 2 * a_.node_frames_per_s;
  file_state_ = FileKsState(*nodes_store_, *gen_store_);
  state_ = file_state_.get();
  ks_ = std::make_unique<KeyServer>(std::move(own), std::move(kedk),
                                    *ks_transport_, *state_, nullptr,
                                    *SystemClock(), ko);
  ks_topic1_ = ks_->topic1();
  // As kgr-ks does: batches of messages, one fdatasync per batch.
  ks_inbox_ = std::make_unique<KeyServerInbox>(*ks_, ks_loop_.loop);
  ks_tap_->SetHandler([this](const std::string& topic, Bytes p) {
    if (!ks_inbox_->Push(topic, std::move(p))) {
      spdlog::warn("bench: KS queue full");
    }
  });
  // Bare KS: answers on the KS loop like the real one, without crypto.
  ks_tap_->SetBareHandler([this](const std::string&, Bytes p) {
    ks_loop_.loop.Post([this, p = std::move(p)] {
      uint32_t pair = BarePair(p);
      if (pair >= nodes_.size() / 2 || p.size() < 2) return;
      const SimNode& a = nodes_[2 * pair];
      const SimNode& b = nodes_[2 * pair + 1];
      if (p[1] == 3) {
        (void)ks_transport_->Publish(a.topic2,
                                     BareMessage(4, pair, bare_size_[4]));
        (void)ks_transport_->Publish(b.topic2,
                                     BareMessage(5, pair, bare_size_[5]));
      } else if (p[1] == 6) {
        (void)ks_transport_->Publish(a.topic2,
                                     BareMessage(7, pair, bare_size_[7]));
      }
    });
  });
  KGR_RETURN_IF_ERROR(ks_transport_->Connect());
  KGR_RETURN_IF_ERROR(ks_->Start());
  ks_loop_.thread = std::thread([this] {
    ks_loop_.tid = GetTid();
    ::pthread_setname_np(::pthread_self(), "ks-loop");
    uint64_t last = 0;
    ks_loop_.loop.Run([&] {
      uint64_t now = SystemClock()->NowMonotonicMillis();
      if (now - last >= 1000) {
        ks_->Tick();
        last = now;
      }
    });
  });
  return OkStatus();
}

Status Bench::StartNodes(Json* setup) {
  // Certificates (one openssl run per node) on 2 threads.
  auto t0 = SteadyClock::now();
  std::vector<StatusOr<MqttOptions>> opts(nodes_.size(),
                                          InternalError("unset"));
  ParallelFor(nodes_.size(), 2,
              [&](size_t i) { opts[i] = ClientOptions(nodes_[i].cn, "node"); });
  (*setup)["client_certs_s"] = Round(SecondsSince(t0));
  for (auto& o : opts) KGR_RETURN_IF_ERROR(o.status());

  for (int l = 0; l < a_.node_loops; ++l) {
    node_loops_.push_back(std::make_unique<LoopThread>());
  }
  std::string ca_pem, cert_pem;
  t0 = SteadyClock::now();
  spdlog::level::level_enum saved = spdlog::get_level();
  spdlog::set_level(spdlog::level::err);  // OpenTpm("none") warns per node
  for (size_t i = 0; i < nodes_.size(); ++i) {
    SimNode& n = nodes_[i];
    n.loop = static_cast<int>(i % node_loops_.size());
    n.dir = node_root_ + "/" + n.cn;
    KGR_RETURN_IF_ERROR(node_fs_->CreateDir(n.dir, 0700));
    TpmOptions to;
    to.tcti = "none";
    to.state_dir = n.dir;
    KGR_ASSIGN_OR_RETURN(n.tpm, OpenTpm(to));
    Credentials c;
    c.n_id = n.n_id;
    c.ntag = n.ntag.Clone();
    c.broker_address = host_ + ":" + std::to_string(port_);
    c.ks_n_id = ks_n_id_;
    KGR_ASSIGN_OR_RETURN(OwnData own, InitNode(*n.tpm, c));
    n.topic2 =
        TopicName(own.identity.topic_prefix, n.cn, own.identity.own_topic);
    topic_to_node_[n.topic2] = i;
    KGR_ASSIGN_OR_RETURN(
        n.ses,
        SesKeysStore::Open(*node_fs_, n.dir + "/ses_keys", own.nk, n.n_id));
    KGR_ASSIGN_OR_RETURN(auto inner, NewMqttTransport(*opts[i]));
    auto tap = std::make_unique<TapTransport>(std::move(inner));
    n.tap = tap.get();
    n.transport = std::move(tap);
    NodeClientOptions no;
    no.request_timeout_ms = 30'000;
    n.client = std::make_unique<NodeClient>(
        std::move(own), *n.tpm, *n.transport, *n.ses, *SystemClock(), no);
    EventLoop* loop = &node_loops_[n.loop]->loop;
    NodeClient* client = n.client.get();
    n.tap->SetHandler([loop, client](const std::string& t, Bytes p) {
      size_t bytes = p.size() + t.size();
      if (!loop->Post(
              [client, t, p = std::move(p)] { client->HandleMessage(t, p); },
              bytes)) {
        spdlog::warn("bench: node queue full");
      }
    });
    n.tap->SetBareHandler([this, loop, i](const std::string&, Bytes p) {
      loop->Post([this, i, p = std::move(p)] {
        uint32_t pair = BarePair(p);
        if (pair >= nodes_.size() / 2 || p.size() < 2) return;
        SimNode& me = nodes_[i];
        if (p[1] == 5) {
          (void)me.transport->Publish(ks_topic1_,
                                      BareMessage(6, pair, bare_size_[6]));
        } else if (p[1] == 7) {
          (void)me.transport->Publish(ks_topic1_,
                                      BareMessage(8, pair, bare_size_[8]));
          std::function<void(bool)> done;
          {
            std::lock_guard<std::mutex> l(bare_mu_);
            done = std::move(bare_done_[pair]);
          }
          if (done) done(true);
        }
      });
    });
  }
  spdlog::set_level(saved);
  (*setup)["node_init_s"] = Round(SecondsSince(t0));

  // Connect concurrently (Paho's connect waits on the broker's CONNACK).
  t0 = SteadyClock::now();
  std::vector<Status> cst(nodes_.size());
  ParallelFor(nodes_.size(), std::min<int>(64, nodes_.size()),
              [&](size_t i) { cst[i] = nodes_[i].transport->Connect(); });
  (*setup)["connect_s"] = Round(SecondsSince(t0));
  for (auto& s : cst) KGR_RETURN_IF_ERROR(s);
  for (auto& n : nodes_) KGR_RETURN_IF_ERROR(n.client->Start());

  for (size_t l = 0; l < node_loops_.size(); ++l) {
    LoopThread* lt = node_loops_[l].get();
    std::vector<NodeClient*> mine;
    for (auto& n : nodes_) {
      if (n.loop == static_cast<int>(l)) mine.push_back(n.client.get());
    }
    lt->thread = std::thread([lt, mine] {
      lt->tid = GetTid();
      ::pthread_setname_np(::pthread_self(), "node-loop");
      lt->loop.Run([&] {
        for (NodeClient* c : mine) c->Tick();
      });
    });
  }
  loops_running_ = true;

  // Registration (seed 4.5) of every node, all at once.
  t0 = SteadyClock::now();
  std::atomic<size_t> registered{0}, failed{0};
  for (auto& n : nodes_) {
    NodeClient* c = n.client.get();
    node_loops_[n.loop]->loop.Post([c, &registered, &failed] {
      c->Register([&](Status st) {
        if (st.ok())
          ++registered;
        else {
          spdlog::error("bench: registration failed: {}", st.ToString());
          ++failed;
        }
      });
    });
  }
  bool all = WaitFor([&] { return registered + failed == nodes_.size(); }, 120);
  (*setup)["register_s"] = Round(SecondsSince(t0));
  if (!all || failed > 0) {
    return UnavailableError("registration: " + std::to_string(registered) +
                            " of " + std::to_string(nodes_.size()) + " nodes");
  }
  // Peer lists: (2i, 2i+1).
  std::atomic<size_t> loaded{0}, bad{0};
  for (size_t i = 0; i < nodes_.size(); ++i) {
    NodeClient* c = nodes_[i].client.get();
    uint32_t peer = nodes_[i ^ 1].n_id;
    node_loops_[nodes_[i].loop]->loop.Post([c, peer, &loaded, &bad] {
      if (!c->LoadPeers({peer}).ok()) ++bad;
      ++loaded;
    });
  }
  WaitFor([&] { return loaded == nodes_.size(); }, 60);
  if (bad > 0) return InternalError("LoadPeers failed");
  return OkStatus();
}

// CPU seconds so far of the KS loop, the node loops, this process, the
// broker.
struct Bench::CpuSample {
  double ks_thread = 0, node_threads = 0, process = 0, broker = 0;
};

Bench::CpuSample Bench::SampleCpu() const {
  CpuSample s;
  s.ks_thread = ThreadCpu(ks_loop_.tid);
  for (auto& l : node_loops_) s.node_threads += ThreadCpu(l->tid);
  s.process = ProcessCpu();
  s.broker = BrokerCpu();
  return s;
}

// CPU µs per unit of work (establishment or bare exchange), `n` of them
// between the samples `a` and `b`.
Json CpuPerUnit(const Bench::CpuSample& a, const Bench::CpuSample& b,
                uint64_t n) {
  double per = n ? 1e6 / n : 0;
  return {
      {"ks_loop_thread", Round((b.ks_thread - a.ks_thread) * per, 10)},
      {"node_loop_threads", Round((b.node_threads - a.node_threads) * per, 10)},
      {"process", Round((b.process - a.process) * per, 10)},
      {"broker", Round((b.broker - a.broker) * per, 10)}};
}

struct Snapshot : Bench::CpuSample {
  FsCounts ks_fs, node_fs;
  TpmCounters ks_tpm, node_tpm;
  KeyServerStats ks;
  uint64_t node_subscribes = 0;
  uint64_t messages = 0;  // published by the KS and the nodes
};

Driver::Start Bench::Establish(bool renewal) {
  return [this, renewal](size_t pair, std::function<void(bool)> done) {
    SimNode& req = nodes_[2 * pair];
    uint32_t peer = nodes_[2 * pair + 1].n_id;
    NodeClient* c = req.client.get();
    node_loops_[req.loop]->loop.Post(
        [c, peer, renewal, done = std::move(done)] {
          c->RequestKey(peer, renewal, [done](Status st) {
            if (!st.ok()) {
              spdlog::warn("bench: establishment failed: {}", st.ToString());
            }
            done(st.ok());
          });
        });
  };
}

Status Bench::RunReal(uint64_t count, double duration_s, bool renewal,
                      bool measured, Json* out) {
  auto snap = [&] {
    Snapshot s;
    static_cast<CpuSample&>(s) = SampleCpu();
    s.ks_fs = ks_fs_->counts();
    s.node_fs = node_fs_->counts();
    s.ks_tpm = ks_tpm_->counters();
    for (int t = 0; t < 256; ++t) s.messages += ks_tap_->published(t);
    for (auto& n : nodes_) {
      TpmCounters c = n.tpm->counters();
      s.node_tpm.nv_writes += c.nv_writes;
      s.node_tpm.tpm_commands += c.tpm_commands;
      s.node_subscribes += n.tap->subscribes();
      for (int t = 0; t < 256; ++t) s.messages += n.tap->published(t);
    }
    return s;
  };
  Snapshot before = snap();
  Driver d(nodes_.size() / 2, a_.window, count, duration_s, Establish(renewal));
  double timeout = (duration_s > 0 ? duration_s : 0) + 60 + count / 50.0;
  bool finished = d.Run(timeout);
  // The KS loop may still be finishing the last conf_ans: let it drain.
  WaitFor([&] { return state_->gen_keys().size() == 0; }, 5);
  Snapshot after = snap();
  if (!finished) return DeadlineExceededError("establishments did not finish");
  if (!measured) return OkStatus();
  uint64_t n = d.completed();
  double per = n ? 1.0 / n : 0;
  Json& j = *out;
  j["establishments"] = n;
  j["errors"] = d.errors();
  j["elapsed_s"] = Round(d.elapsed_s());
  j["establishments_per_s"] =
      Round(d.elapsed_s() > 0 ? n / d.elapsed_s() : 0, 10);
  j["latency_ms"] = Percentiles(d.latencies_ms());
  double ks_cpu = after.ks_thread - before.ks_thread;
  double proc_cpu = after.process - before.process;
  double node_cpu = after.node_threads - before.node_threads;
  j["ks"] = {
      {"cpu_s_loop_thread", Round(ks_cpu)},
      {"cpu_us_per_establishment_loop_thread", Round(ks_cpu * per * 1e6, 10)},
      {"fsyncs_per_establishment",
       Round((after.ks_fs.syncs() - before.ks_fs.syncs()) * per)},
      {"file_syncs", after.ks_fs.file_syncs - before.ks_fs.file_syncs},
      {"dir_syncs", after.ks_fs.dir_syncs - before.ks_fs.dir_syncs},
      {"journal_bytes_per_establishment",
       Round((after.ks_fs.append_bytes - before.ks_fs.append_bytes) * per, 10)},
      {"preallocated_bytes_per_establishment",
       Round((after.ks_fs.zero_bytes - before.ks_fs.zero_bytes) * per, 10)},
      {"nv_writes_per_establishment",
       Round((after.ks_tpm.nv_writes - before.ks_tpm.nv_writes) * per)},
      {"tpm_commands_per_establishment",
       Round((after.ks_tpm.tpm_commands - before.ks_tpm.tpm_commands) * per)},
      {"tpm_commands_at_start", before.ks_tpm.tpm_commands},
      {"nv_writes_at_start", before.ks_tpm.nv_writes},
      {"node_desc_records", state_->nodes().size()},
  };
  j["nodes_side"] = {
      {"cpu_s_loop_threads", Round(node_cpu)},
      {"fsyncs_per_establishment",
       Round((after.node_fs.syncs() - before.node_fs.syncs()) * per)},
      {"nv_writes_per_establishment",
       Round((after.node_tpm.nv_writes - before.node_tpm.nv_writes) * per)},
      {"tpm_commands_per_establishment",
       Round((after.node_tpm.tpm_commands - before.node_tpm.tpm_commands) *
             per)},
      {"subscribes_per_establishment",
       Round((after.node_subscribes - before.node_subscribes) * per)},
  };
  // 6 unless something was sent again (retransmissions, error answers).
  j["messages_per_establishment"] =
      Round((after.messages - before.messages) * per);
  j["process_cpu_s"] = Round(proc_cpu);
  j["other_threads_cpu_s"] = Round(proc_cpu - ks_cpu - node_cpu);
  j["broker_cpu_s"] = Round(after.broker - before.broker);
  // Same shape as bare.cpu_us_per_exchange, to compare the two directly.
  j["cpu_us_per_establishment"] = CpuPerUnit(before, after, n);
  return OkStatus();
}

Status Bench::RunBare(uint64_t count, double duration_s, Json* out) {
  for (uint8_t t = 3; t <= 8; ++t) {
    uint32_t s = (t == 4 || t == 5 || t == 7) ? ks_tap_->last_size(t) : 0;
    for (auto& n : nodes_) s = std::max(s, n.tap->last_size(t));
    bare_size_[t] = s;
  }
  bare_done_.assign(nodes_.size() / 2, nullptr);
  ks_tap_->set_bare_mode(true);
  for (auto& n : nodes_) n.tap->set_bare_mode(true);
  const CpuSample cpu0 = SampleCpu();
  Driver d(nodes_.size() / 2, a_.window, count, duration_s,
           [&](size_t pair, std::function<void(bool)> done) {
             SimNode& req = nodes_[2 * pair];
             {
               std::lock_guard<std::mutex> l(bare_mu_);
               bare_done_[pair] = std::move(done);
             }
             node_loops_[req.loop]->loop.Post([this, &req, pair] {
               (void)req.transport->Publish(
                   ks_topic1_,
                   BareMessage(3, static_cast<uint32_t>(pair), bare_size_[3]));
             });
           });
  bool finished = d.Run((duration_s > 0 ? duration_s : 0) + 60 + count / 50.0);
  // The last nnsk_conf_ans-sized messages are still on their way to the KS.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ks_tap_->set_bare_mode(false);
  for (auto& n : nodes_) n.tap->set_bare_mode(false);
  if (!finished) return DeadlineExceededError("bare exchanges did not finish");
  uint64_t n = d.completed();
  Json& j = *out;
  j["exchanges"] = n;
  j["elapsed_s"] = Round(d.elapsed_s());
  j["exchanges_per_s"] = Round(d.elapsed_s() > 0 ? n / d.elapsed_s() : 0, 10);
  j["latency_ms"] = Percentiles(d.latencies_ms());
  const CpuSample cpu1 = SampleCpu();
  j["process_cpu_s"] = Round(cpu1.process - cpu0.process);
  j["broker_cpu_s"] = Round(cpu1.broker - cpu0.broker);
  // Same shape as cpu_us_per_establishment of the real run.
  j["cpu_us_per_exchange"] = CpuPerUnit(cpu0, cpu1, n);
  Json sizes;
  for (uint8_t t = 3; t <= 8; ++t) {
    sizes[std::string(FrameTypeName(static_cast<FrameType>(t)))] =
        bare_size_[t];
  }
  j["message_sizes"] = sizes;
  return OkStatus();
}

StatusOr<Json> Bench::Run() {
  Json result;
  result["command"] = a_.command_line;
  result["machine"] = Machine();
  root_ = harness::MakeTempDir("kgr-bench");
  ::chmod(root_.c_str(), 0755);
  ks_dir_ = MakeDirUnder(a_.ks_dir, "ks");
  node_root_ = MakeDirUnder(a_.node_dir, "nodes");
  if (root_.empty() || ks_dir_.empty() || node_root_.empty()) {
    return InternalError("cannot create the temporary directories");
  }
  result["config"] = {{"nodes", a_.nodes},
                      {"pairs", a_.nodes / 2},
                      {"window", a_.window},
                      {"rounds", a_.rounds},
                      {"count", a_.count},
                      {"duration_s", a_.duration_s},
                      {"warmup", a_.warmup},
                      {"renew", a_.renew},
                      {"qos", a_.qos},
                      {"mqtt_client", MqttClientName(a_.client)},
                      {"tls", a_.tls},
                      {"ks_tpm", a_.swtpm ? "swtpm" : a_.tcti},
                      {"ks_dir_fs", FsType(ks_dir_)},
                      {"node_dir_fs", FsType(node_root_)},
                      {"node_loops", a_.node_loops},
                      {"node_frames_per_s", a_.node_frames_per_s},
                      {"broker_cpu", a_.broker_cpu},
                      {"scale_nodes", a_.scale_nodes}};
  ks_fs_ = std::make_unique<CountingFileSystem>(*DefaultFileSystem());
  node_fs_ = std::make_unique<CountingFileSystem>(*DefaultFileSystem());
  Json setup;
  auto t0 = SteadyClock::now();
  KGR_RETURN_IF_ERROR(StartBroker());
  setup["broker_s"] = Round(SecondsSince(t0));
  t0 = SteadyClock::now();
  KGR_RETURN_IF_ERROR(InitKsTpm());
  setup["ks_init_s"] = Round(SecondsSince(t0));
  double fill_s = 0;
  KGR_RETURN_IF_ERROR(FillNodeDesc(0, &fill_s));
  if (a_.scale_nodes > 0) {
    Json scale;
    auto base = ColdStart("base");
    if (!base.ok()) return base.status().Annotate("cold start (base)");
    scale["cold_start_base"] = *base;
    KGR_RETURN_IF_ERROR(FillNodeDesc(a_.scale_nodes, &fill_s));
    scale["fill_s"] = Round(fill_s);
    auto big = ColdStart("scale");
    if (!big.ok()) return big.status().Annotate("cold start (scale)");
    scale["cold_start"] = *big;
    long d = (*big)["rss_kb"].get<long>() - (*base)["rss_kb"].get<long>();
    scale["ks_rss_bytes_per_registered_node"] =
        Round(d * 1024.0 / a_.scale_nodes, 10);
    scale["node_desc_bytes"] = [&] {
      struct stat st {};
      return ::stat((ks_dir_ + "/node_desc").c_str(), &st) == 0 ? st.st_size
                                                                : 0;
    }();
    result["scale"] = scale;
  }
  t0 = SteadyClock::now();
  KGR_RETURN_IF_ERROR(StartKs());
  setup["ks_open_and_connect_s"] = Round(SecondsSince(t0));
  KGR_RETURN_IF_ERROR(StartNodes(&setup));
  result["setup"] = setup;

  uint64_t warm = a_.warmup;
  if (a_.renew) warm = std::max<uint64_t>(warm, nodes_.size() / 2);
  if (warm > 0) {
    KGR_RETURN_IF_ERROR(RunReal(warm, 0, false, false, nullptr));
  }
  if (!a_.ks_instances.empty()) {
    KGR_RETURN_IF_ERROR(RunCluster(&result));
    result["process_peak_rss_kb"] = StatusKb("self", "VmHWM");
    return result;
  }
  Json real;
  KGR_RETURN_IF_ERROR(RunReal(a_.count, a_.duration_s, a_.renew, true, &real));
  for (auto& [k, v] : real.items()) result[k] = v;
  Json sizes;
  for (uint8_t t = 3; t <= 8; ++t) {
    uint32_t s = ks_tap_->last_size(t);
    for (auto& n : nodes_) s = std::max(s, n.tap->last_size(t));
    sizes[std::string(FrameTypeName(static_cast<FrameType>(t)))] = s;
  }
  result["frame_sizes"] = sizes;
  if (a_.bare) {
    Json bare;
    // Same number of exchanges as the real run completed (same duration
    // bound), back to back.
    uint64_t n = result["establishments"].get<uint64_t>();
    KGR_RETURN_IF_ERROR(
        RunBare(std::max<uint64_t>(n, 1), a_.duration_s, &bare));
    result["bare"] = bare;
    // More (real, bare) pairs back to back: on a shared 2-core machine one
    // pair varies by 10-15 %, so the headline figures are the medians.
    Json rounds = Json::array();
    std::vector<double> reals, bares, ratios;
    // CPU µs (this process and the broker) per establishment / exchange.
    auto cpu_us = [](const Json& per_unit) {
      return Round(
          per_unit["process"].get<double>() + per_unit["broker"].get<double>(),
          1);
    };
    // [KS loop, node loops, rest of this process, broker]
    auto split = [](const Json& u) {
      double ks = u["ks_loop_thread"].get<double>();
      double nodes = u["node_loop_threads"].get<double>();
      return Json::array({Round(ks, 1), Round(nodes, 1),
                          Round(u["process"].get<double>() - ks - nodes, 1),
                          Round(u["broker"].get<double>(), 1)});
    };
    auto add_round = [&](const Json& real_r, const Json& bare_r) {
      double real_rate = real_r["establishments_per_s"].get<double>();
      double bare_rate = bare_r["exchanges_per_s"].get<double>();
      double ratio = bare_rate > 0 ? real_rate / bare_rate : 0;
      rounds.push_back(
          {{"establishments_per_s", Round(real_rate)},
           {"bare_exchanges_per_s", Round(bare_rate)},
           {"ratio", Round(ratio)},
           {"cpu_us_per_establishment",
            cpu_us(real_r["cpu_us_per_establishment"])},
           {"bare_cpu_us_per_exchange", cpu_us(bare_r["cpu_us_per_exchange"])},
           {"cpu_us_split", split(real_r["cpu_us_per_establishment"])},
           {"ks_fsyncs_per_establishment",
            real_r["ks"]["fsyncs_per_establishment"]},
           {"bare_cpu_us_split", split(bare_r["cpu_us_per_exchange"])}});
      reals.push_back(real_rate);
      bares.push_back(bare_rate);
      ratios.push_back(ratio);
    };
    add_round(result, bare);
    for (int r = 1; r < a_.rounds; ++r) {
      Json real_r, bare_r;
      KGR_RETURN_IF_ERROR(
          RunReal(a_.count, a_.duration_s, a_.renew, true, &real_r));
      uint64_t nr = real_r["establishments"].get<uint64_t>();
      KGR_RETURN_IF_ERROR(
          RunBare(std::max<uint64_t>(nr, 1), a_.duration_s, &bare_r));
      add_round(real_r, bare_r);
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      size_t m = v.size() / 2;
      return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
    };
    result["rounds"] = rounds;
    result["establishments_per_s_first_round"] = result["establishments_per_s"];
    result["establishments_per_s"] = Round(median(reals));
    result["bare_rate_per_s"] = Round(median(bares));
    result["ratio"] = Round(median(ratios));
  } else {
    result["bare"] = nullptr;
    result["ratio"] = nullptr;
  }
  if (a_.etcd || !a_.state.empty()) {
    Json etcd_setup;
    KGR_RETURN_IF_ERROR(SwitchKsToEtcd(&etcd_setup));
    KGR_ASSIGN_OR_RETURN(Json on_etcd, RunStateRounds());
    on_etcd["setup"] = etcd_setup;
    double files = result["establishments_per_s"].get<double>();
    double etcd = on_etcd["establishments_per_s"].get<double>();
    on_etcd["ratio_to_files"] = Round(files > 0 ? etcd / files : 0);
    result["etcd"] = on_etcd;
  }
  result["process_peak_rss_kb"] = StatusKb("self", "VmHWM");
  Json threads;
  for (auto& [name, cpu] : CpuByThreadName()) threads[name] = Round(cpu);
  result["thread_cpu_s_total"] = threads;
  result["ks"]["stats"] = {{"registrations", ks_->stats().registrations},
                           {"keys_issued", ks_->stats().keys_issued},
                           {"keys_confirmed", ks_->stats().keys_confirmed},
                           {"dropped_frames", ks_->stats().dropped_frames},
                           {"rate_limited", ks_->stats().rate_limited}};
  result["ks"]["peak_rss_kb"] = nullptr;
  result["ks"]["peak_rss_note"] =
      "the KS runs in this process; see process_peak_rss_kb (KS + all nodes) "
      "and scale.cold_start.rss_kb (kgr-ks alone)";
  return result;
}

Status Bench::SwitchKsToEtcd(Json* setup) {
  KGR_ASSIGN_OR_RETURN(EtcdStateOptions so, StartEtcd(setup));
  // The harness's client options (its timeouts), not the URL's defaults.
  if (etcd_) so.etcd = etcd_->ClientOptions();
  auto t0 = SteadyClock::now();
  KGR_ASSIGN_OR_RETURN(OwnData own, LoadOwnData(*ks_tpm_));
  KGR_ASSIGN_OR_RETURN(Bytes kedk, ks_tpm_->KedkPublic());
  KGR_ASSIGN_OR_RETURN(DomainKey key, NewDomainKey(own.identity.n_id));
  KGR_ASSIGN_OR_RETURN(etcd_state_, EtcdKsState::Open(so, key));
  // On the KS loop: no frame is in flight between rounds.
  std::promise<Status> switched;
  ks_loop_.loop.Post([&] {
    Status st = ks_->FlushCounters();
    std::vector<NodeDesc> all;
    nodes_store_->ForEach([&](const NodeDesc& d) { all.push_back(d.Clone()); });
    if (st.ok()) st = etcd_state_->nodes().PutAll(all);
    if (st.ok()) {
      KeyServerOptions ko;
      ko.node_frames_per_s = a_.node_frames_per_s;
      ko.node_burst = 2 * a_.node_frames_per_s;
      ko.counter_floor = ks_->last_counter();
      ks_inbox_.reset();
      ks_ = std::make_unique<KeyServer>(std::move(own), std::move(kedk),
                                        *ks_transport_, *etcd_state_, nullptr,
                                        *SystemClock(), ko);
      ks_inbox_ = std::make_unique<KeyServerInbox>(*ks_, ks_loop_.loop);
      state_ = etcd_state_.get();
    }
    switched.set_value(st);
  });
  KGR_RETURN_IF_ERROR(switched.get_future().get());
  (*setup)["switch_s"] = Round(SecondsSince(t0));
  return OkStatus();
}

StatusOr<Json> Bench::RunStateRounds() {
  uint64_t warm = a_.warmup;
  if (a_.renew) warm = std::max<uint64_t>(warm, nodes_.size() / 2);
  if (warm > 0) KGR_RETURN_IF_ERROR(RunReal(warm, 0, false, false, nullptr));
  Json rounds = Json::array();
  std::vector<std::pair<double, size_t>> rates;
  for (int r = 0; r < a_.rounds; ++r) {
    Json one;
    KGR_RETURN_IF_ERROR(RunReal(a_.count, a_.duration_s, a_.renew, true, &one));
    rates.emplace_back(one["establishments_per_s"].get<double>(), r);
    rounds.push_back(
        {{"establishments_per_s", one["establishments_per_s"]},
         {"errors", one["errors"]},
         {"latency_ms", one["latency_ms"]},
         {"cpu_us_per_establishment_ks_loop",
          one["ks"]["cpu_us_per_establishment_loop_thread"]},
         {"messages_per_establishment", one["messages_per_establishment"]}});
  }
  std::sort(rates.begin(), rates.end());
  const Json& median = rounds[rates[rates.size() / 2].second];
  Json out;
  out["rounds"] = rounds;
  out["establishments_per_s"] = median["establishments_per_s"];
  out["latency_ms"] = median["latency_ms"];
  return out;
}

void Bench::Teardown() {
  for (auto& p : ks_procs_) p->Stop();
  ks_procs_.clear();
  if (loops_running_) {
    for (auto& l : node_loops_) l->loop.Stop();
    for (auto& l : node_loops_) {
      if (l->thread.joinable()) l->thread.join();
    }
    loops_running_ = false;
  }
  if (ks_loop_.thread.joinable()) {
    ks_loop_.loop.Stop();
    ks_loop_.thread.join();
    if (ks_) (void)ks_->FlushCounters();
  }
  ParallelFor(nodes_.size(),
              std::min<int>(32, std::max<size_t>(1, nodes_.size())),
              [&](size_t i) {
                if (nodes_[i].transport)
                  (void)nodes_[i].transport->Disconnect();
              });
  if (ks_transport_) (void)ks_transport_->Disconnect();
  nodes_.clear();
  ks_.reset();
  ks_transport_.reset();
  etcd_state_.reset();
  etcd_.reset();
  file_state_.reset();
  gen_store_.reset();
  nodes_store_.reset();
  ks_tpm_.reset();
  if (mosq_) mosq_->Stop();
  if (plain_) plain_->Stop();
  if (swtpm_) swtpm_->Stop();
  if (!a_.keep) {
    for (const std::string& d : {root_, ks_dir_, node_root_}) {
      if (!d.empty()) harness::RemoveTree(d);
    }
    for (const std::string& d : instance_dirs_) {
      if (d != ks_dir_) harness::RemoveTree(d);
    }
  } else {
    std::fprintf(stderr, "kgr-bench: kept %s %s %s\n", root_.c_str(),
                 ks_dir_.c_str(), node_root_.c_str());
  }
  root_.clear();
}

// ---- --ks-instances: real kgr-ks processes ----

// The in-process KS leaves: its loop stops, its MQTT session closes, its
// files are closed; the nodes stay connected and registered.
void Bench::StopInProcessKs() {
  if (ks_loop_.thread.joinable()) {
    ks_loop_.loop.Stop();
    ks_loop_.thread.join();
  }
  if (ks_) (void)ks_->FlushCounters();
  if (ks_transport_) (void)ks_transport_->Disconnect();
  ks_inbox_.reset();
  ks_.reset();
  ks_transport_.reset();
  ks_tap_ = nullptr;
  state_ = nullptr;
  file_state_.reset();
  gen_store_.reset();
  nodes_store_.reset();
  ks_tpm_.reset();
}

// `kgr-ks run` on `dir`: on its files (instance < 0) or as that instance
// of the cluster on etcd.
std::vector<std::string> Bench::KsRunArgv(const std::string& dir,
                                          int instance) {
  std::vector<std::string> argv = {
      a_.ks_binary,    "run",
      "--state-dir",   dir,
      "--tcti",        "none",
      "--broker",      host_ + ":" + std::to_string(port_),
      "--ca",          ks_mqtt_.ca_file,
      "--cert",        ks_mqtt_.cert_file,
      "--key",         ks_mqtt_.key_file,
      "--mqtt-qos",    std::to_string(a_.qos),
      "--mqtt-client", std::string(MqttClientName(a_.client)),
      "--log-level",   a_.log_level};
  if (instance >= 0) {
    for (const std::string& s :
         {std::string("--state"), etcd_url_, std::string("--instance"),
          std::to_string(instance), std::string("--share-group"),
          share_group_}) {
      argv.push_back(s);
    }
  }
  return argv;
}

StatusOr<EtcdStateOptions> Bench::StartEtcd(Json* setup) {
  auto t0 = SteadyClock::now();
  if (a_.etcd) {
    const std::string dir = MakeDirUnder(a_.ks_dir, "etcd");
    if (dir.empty()) return InternalError("cannot create the etcd dir");
    etcd_ = std::make_unique<harness::Etcd>(dir, 1);
    KGR_RETURN_IF_ERROR(etcd_->Start());
    etcd_url_ = etcd_->StateUrl("kgr-bench");
    (*setup)["etcd_data_dir_fs"] = FsType(dir);
  } else {
    etcd_url_ = a_.state;
  }
  KGR_ASSIGN_OR_RETURN(EtcdStateUrl url, ParseEtcdStateUrl(etcd_url_));
  EtcdStateOptions so;
  so.etcd.endpoints = url.endpoints;
  so.prefix = url.prefix;
  (*setup)["etcd_start_s"] = Round(SecondsSince(t0));
  return so;
}

// node_desc from the files (as the file-state kgr-ks left it) into a new
// etcd state, and its domain key into the KS dir, sealed under the NK.
Status Bench::MoveNodeDescToEtcd(Json* setup) {
  const auto t0 = SteadyClock::now();  // switch_s includes the etcd start
  KGR_ASSIGN_OR_RETURN(EtcdStateOptions so, StartEtcd(setup));
  TpmOptions to;
  to.tcti = "none";
  to.state_dir = ks_dir_;
  KGR_ASSIGN_OR_RETURN(auto tpm, OpenTpm(to));
  KGR_ASSIGN_OR_RETURN(OwnData own, LoadOwnData(*tpm));
  KGR_ASSIGN_OR_RETURN(DomainKey key, NewDomainKey(own.identity.n_id));
  KGR_RETURN_IF_ERROR(
      SaveDomainKey(*DefaultFileSystem(), DomainKeyPath(ks_dir_), key, own.nk));
  auto state = EtcdKsState::Open(so, key);
  if (!state.ok()) {
    return state.status().Annotate(
        "a new etcd state (--state: use a fresh "
        "prefix)");
  }
  StoreOptions o;
  o.decoded_records = 0;
  KGR_ASSIGN_OR_RETURN(
      auto store, NodeDescStore::Open(*ks_fs_, ks_dir_ + "/node_desc", own.nk,
                                      own.identity.n_id, o));
  std::vector<NodeDesc> all;
  store->ForEach([&](const NodeDesc& d) { all.push_back(d.Clone()); });
  KGR_RETURN_IF_ERROR((*state)->nodes().PutAll(all));
  (*setup)["node_desc_records"] = all.size();
  // Every further instance: a copy of this KS dir (same identity, NK,
  // software TPM and domain key), its own counter lane.
  instance_dirs_ = {ks_dir_};
  for (int i = 1; i < a_.ks_instances.back(); ++i) {
    instance_dirs_.push_back(ks_dir_ + "-" + std::to_string(i));
    KGR_RETURN_IF_ERROR(CopyTree(ks_dir_, instance_dirs_.back()));
  }
  KGR_ASSIGN_OR_RETURN(uint32_t g, RandomU32());
  share_group_ = "ks" + std::to_string(g);
  (*setup)["switch_s"] = Round(SecondsSince(t0));
  return OkStatus();
}

// Instances 0..k-1 running (those already up stay up).
Status Bench::StartInstances(size_t k) {
  while (ks_procs_.size() < k) {
    const int i = static_cast<int>(ks_procs_.size());
    ks_procs_.push_back(std::make_unique<KsProcess>(
        KsRunArgv(instance_dirs_[i], i),
        root_ + "/kgr-ks-" + std::to_string(i) + ".log"));
  }
  for (size_t i = 0; i < k; ++i) {
    if (!ks_procs_[i]->running()) {
      KGR_RETURN_IF_ERROR(ks_procs_[i]->Start(60));
    }
  }
  return OkStatus();
}

double Bench::EtcdCpu() const {
  if (!etcd_) return 0;
  return StatCpuSeconds("/proc/" + std::to_string(etcd_->pid(0)) + "/stat");
}

double Bench::InstancesCpu() const {
  double s = 0;
  for (const auto& p : ks_procs_) s += p->CpuSeconds();
  return s;
}

uint64_t Bench::NodeMessages() const {
  uint64_t m = 0;
  for (const auto& n : nodes_) {
    for (int t = 0; t < 256; ++t) m += n.tap->published(t);
  }
  return m;
}

Status Bench::RunExternal(uint64_t count, double duration_s,
                          const std::function<void()>& during, Json* out,
                          std::vector<Span>* spans) {
  const uint64_t msgs0 = NodeMessages();
  const double ks_cpu0 = InstancesCpu(), broker0 = BrokerCpu();
  const double proc0 = ProcessCpu(), etcd0 = EtcdCpu();
  const std::string etcd_endpoint = etcd_ ? etcd_->endpoints()[0] : "";
  std::map<std::string, double> etcd_ops0;
  if (!etcd_endpoint.empty()) etcd_ops0 = EtcdCounters(etcd_endpoint);
  Driver d(nodes_.size() / 2, a_.window, count, duration_s, Establish(false));
  std::thread side;
  if (during) side = std::thread(during);
  // Bounded by the duration when there is one (the failover's count is
  // only a ceiling).
  bool finished = d.Run(duration_s > 0 ? duration_s + 60 : 60 + count / 50.0);
  if (side.joinable()) side.join();
  if (!finished) return DeadlineExceededError("establishments did not finish");
  if (spans != nullptr) *spans = d.spans();
  if (out == nullptr) return OkStatus();
  const uint64_t n = d.completed();
  const double per = n ? 1e6 / n : 0;
  Json& j = *out;
  j["establishments"] = n;
  j["errors"] = d.errors();
  j["elapsed_s"] = Round(d.elapsed_s());
  j["establishments_per_s"] =
      Round(d.elapsed_s() > 0 ? n / d.elapsed_s() : 0, 10);
  j["latency_ms"] = Percentiles(d.latencies_ms());
  // 3 (key_req, not_ans, conf_ans) unless the nodes sent again.
  j["node_messages_per_establishment"] =
      Round(n ? (NodeMessages() - msgs0) / static_cast<double>(n) : 0);
  j["cpu_us_per_establishment"] = {
      {"kgr_ks_processes", Round((InstancesCpu() - ks_cpu0) * per, 10)},
      {"bench_process", Round((ProcessCpu() - proc0) * per, 10)},
      {"broker", Round((BrokerCpu() - broker0) * per, 10)},
      {"etcd", Round((EtcdCpu() - etcd0) * per, 10)}};
  // What etcd served per establishment (the bench's own etcd only).
  if (!etcd_endpoint.empty() && n > 0) {
    Json ops;
    for (const auto& [name, v] : EtcdCounters(etcd_endpoint)) {
      const double d = v - etcd_ops0[name];
      if (d > 0) ops[name] = Round(d / n);
    }
    j["etcd_per_establishment"] = ops;
  }
  return OkStatus();
}

StatusOr<Json> Bench::ExternalRounds() {
  if (a_.warmup > 0) {
    KGR_RETURN_IF_ERROR(RunExternal(a_.warmup, 0, nullptr, nullptr, nullptr));
  }
  Json rounds = Json::array();
  std::vector<std::pair<double, size_t>> rates;
  for (int r = 0; r < a_.rounds; ++r) {
    Json one;
    KGR_RETURN_IF_ERROR(
        RunExternal(a_.count, a_.duration_s, nullptr, &one, nullptr));
    rates.emplace_back(one["establishments_per_s"].get<double>(), r);
    rounds.push_back(one);
  }
  std::sort(rates.begin(), rates.end());
  const Json& median = rounds[rates[rates.size() / 2].second];
  Json out;
  out["establishments_per_s"] = median["establishments_per_s"];
  out["latency_ms"] = median["latency_ms"];
  out["rounds"] = rounds;
  return out;
}

// Steady load on the running instances for --failover-s; instance 1 is
// SIGKILLed at a third of it.
StatusOr<Json> Bench::RunFailover() {
  const double kill_s = a_.failover_s / 3;
  const size_t victim = 1;
  SteadyClock::time_point killed_at;
  auto kill = [&] {
    std::this_thread::sleep_for(std::chrono::duration<double>(kill_s));
    killed_at = SteadyClock::now();
    ks_procs_[victim]->Kill();
  };
  Json run;
  std::vector<Span> spans;
  const auto t0 = SteadyClock::now();
  KGR_RETURN_IF_ERROR(
      RunExternal(1'000'000'000, a_.failover_s, kill, &run, &spans));
  const double at = std::chrono::duration<double>(killed_at - t0).count();
  Json f = FailoverFigures(spans, at, kill_s);
  f["instances"] = ks_procs_.size();
  f["killed_instance"] = victim;
  f["run"] = run;
  return f;
}

Status Bench::RunCluster(Json* result) {
  Json c;
  c["load_average_start"] = LoadAverage();
  KGR_ASSIGN_OR_RETURN(ks_mqtt_, ClientOptions("ks", "ks"));
  StopInProcessKs();
  // The baseline: one kgr-ks on its files, the same nodes.
  ks_procs_.push_back(std::make_unique<KsProcess>(KsRunArgv(ks_dir_, -1),
                                                  root_ + "/kgr-ks-files.log"));
  KGR_RETURN_IF_ERROR(ks_procs_[0]->Start(60));
  KGR_ASSIGN_OR_RETURN(Json files, ExternalRounds());
  ks_procs_[0]->Stop();
  ks_procs_.clear();
  c["files"] = files;
  const double files_rate = files["establishments_per_s"].get<double>();
  Json setup;
  KGR_RETURN_IF_ERROR(MoveNodeDescToEtcd(&setup));
  c["etcd_setup"] = setup;
  Json on_etcd = Json::array();
  for (int k : a_.ks_instances) {
    KGR_RETURN_IF_ERROR(StartInstances(k));
    KGR_ASSIGN_OR_RETURN(Json r, ExternalRounds());
    const double rate = r["establishments_per_s"].get<double>();
    r["instances"] = k;
    r["ratio_to_files"] = Round(files_rate > 0 ? rate / files_rate : 0);
    on_etcd.push_back(r);
  }
  c["etcd"] = on_etcd;
  c["failover"] = nullptr;
  if (a_.failover_s > 0 && a_.ks_instances.back() >= 2) {
    KGR_ASSIGN_OR_RETURN(c["failover"], RunFailover());
  }
  for (auto& p : ks_procs_) p->Stop();
  c["load_average_end"] = LoadAverage();
  (*result)["cluster"] = c;
  return OkStatus();
}

int Main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--groups") return RunGroupBench(argc, argv);
  }
  Args a;
  std::string error;
  if (!ParseArgs(argc, argv, &a, &error)) {
    std::fprintf(stderr, "kgr-bench: %s\n\n%s", error.c_str(), kUsage);
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  spdlog::set_default_logger(spdlog::stderr_color_mt("kgr-bench"));
  spdlog::set_level(spdlog::level::from_str(a.log_level));
  Json out;
  {
    Bench bench(a);
    auto r = bench.Run();
    if (!r.ok()) {
      std::fprintf(stderr, "kgr-bench: %s\n", r.status().ToString().c_str());
      return 1;
    }
    out = std::move(*r);
  }
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

}  // namespace
}  // namespace kgr::bench

int main(int argc, char** argv) { return kgr::bench::Main(argc, argv); }
