#include "daemon/journal_log.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "kgr/daemon.h"

namespace kgr {
namespace {

std::mutex node_field_mu;
std::string& NodeField() {
  static std::string n_id;
  return n_id;
}

int SyslogPriority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return LOG_DEBUG;
    case spdlog::level::info:
      return LOG_INFO;
    case spdlog::level::warn:
      return LOG_WARNING;
    case spdlog::level::err:
      return LOG_ERR;
    default:
      return LOG_CRIT;
  }
}

// "kgr-ks" -> "ks", "kgr-node" -> "node", "kgr-ac" -> "ac".
std::string RoleOf(std::string_view program) {
  constexpr std::string_view kPrefix = "kgr-";
  if (program.substr(0, kPrefix.size()) == kPrefix) {
    program.remove_prefix(kPrefix.size());
  }
  return std::string(program);
}

class JournalSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit JournalSink(std::string program)
      : program_(std::move(program)), role_(RoleOf(program_)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string node;
    {
      std::lock_guard<std::mutex> lock(node_field_mu);
      node = NodeField();
    }
    std::vector<std::string> fields = JournalFields(
        msg.level, std::string_view(msg.payload.data(), msg.payload.size()),
        program_, role_, node);
    std::vector<iovec> iov;
    iov.reserve(fields.size());
    for (std::string& f : fields) iov.push_back({f.data(), f.size()});
    sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
  }
  void flush_() override {}

 private:
  const std::string program_;
  const std::string role_;
};

}  // namespace

bool StderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st;
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

std::vector<std::string> JournalFields(spdlog::level::level_enum level,
                                       std::string_view message,
                                       std::string_view program,
                                       std::string_view role,
                                       std::string_view node) {
  std::vector<std::string> fields = {
      "MESSAGE=" + std::string(message),
      "PRIORITY=" + std::to_string(SyslogPriority(level)),
      "SYSLOG_IDENTIFIER=" + std::string(program),
      "KGR_ROLE=" + std::string(role),
  };
  if (!node.empty()) fields.push_back("KGR_NODE=" + std::string(node));
  return fields;
}

std::shared_ptr<spdlog::sinks::sink> NewJournalSink(std::string program) {
  return std::make_shared<JournalSink>(std::move(program));
}

void SetJournalNodeField(std::string n_id) {
  std::lock_guard<std::mutex> lock(node_field_mu);
  NodeField() = std::move(n_id);
}

void SetupDaemonLogging(std::string_view program, const std::string& level) {
  if (!StderrIsJournal()) return SetupLogging(level);
  ::setenv("TSS2_LOG", "all+NONE", /*overwrite=*/0);
  auto logger = std::make_shared<spdlog::logger>(
      "kgr", NewJournalSink(std::string(program)));
  spdlog::set_default_logger(logger);
  SetLogLevel(level);
}

void SetLogLevel(const std::string& level) {
  spdlog::set_level(spdlog::level::from_str(level.empty() ? "info" : level));
}

}  // namespace kgr
