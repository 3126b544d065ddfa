#include "kgr/cli.h"

#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

namespace kgr {

int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kInvalidArgument:
      return kExitUsage;
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    case StatusCode::kPermissionDenied:
    case StatusCode::kUnauthenticated:
    case StatusCode::kFailedPrecondition:
      return kExitRefused;
    default:
      return kExitFailed;
  }
}

StatusOr<nlohmann::json> LoadJsonConfig(const std::string& path) {
  if (path.empty()) return nlohmann::json::object();
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot read config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgumentError(path + ": not a JSON object");
  }
  return j;
}

void SetupLogging(const std::string& level) {
  // tpm2-tss reads TSS2_LOG when it first logs; kgr reports TPM errors
  // itself, as one line with the decoded code (tss_status.h).
  ::setenv("TSS2_LOG", "all+NONE", /*overwrite=*/0);
  auto logger = spdlog::stderr_color_mt("kgr");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_level(spdlog::level::from_str(level.empty() ? "info" : level));
}

void StopLoopOnSignals(EventLoop& loop, std::function<void()> on_hangup) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (on_hangup) sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set, &loop, on_hangup = std::move(on_hangup)] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGHUP) {
        if (!loop.Post(on_hangup)) spdlog::warn("SIGHUP: loop busy, ignored");
        continue;
      }
      spdlog::info("signal {}: stopping", sig);
      loop.Stop();
      return;
    }
  }).detach();
}

Status SplitHostPort(const std::string& address, std::string* host, int* port) {
  auto colon = address.rfind(':');
  std::string_view h = std::string_view(address).substr(
      0, colon == std::string::npos ? 0 : colon);
  std::string_view p = colon == std::string::npos
                           ? std::string_view()
                           : std::string_view(address).substr(colon + 1);
  bool host_ok = !h.empty() && h.size() <= 253 &&
                 std::none_of(h.begin(), h.end(), [](char c) {
                   return static_cast<unsigned char>(c) <= ' ' || c == 0x7f;
                 });
  bool port_ok = !p.empty() && p.size() <= 5 &&
                 p.find_first_not_of("0123456789") == std::string_view::npos;
  int n = port_ok ? std::stoi(std::string(p)) : 0;
  if (!host_ok || n < 1 || n > 65535) {
    return InvalidArgumentError(
        "must be host:port with a port from 1 to 65535");
  }
  *host = std::string(h);
  *port = n;
  return OkStatus();
}

StatusOr<std::unique_ptr<StagedFile>> StagedFile::Stage(FileSystem& fs,
                                                        const std::string& path,
                                                        int mode,
                                                        size_t reserve) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return InvalidArgumentError(path + " is a directory");
  }
  std::unique_ptr<StagedFile> f(new StagedFile(fs, path, mode));
  const std::string tmp = path + ".tmp";
  auto file = fs.NewWritableFile(tmp, mode);
  if (!file.ok()) return file.status();
  Status s = (*file)->Append(Bytes(reserve, 0));
  if (s.ok()) s = (*file)->Sync();
  Status c = (*file)->Close();
  if (s.ok()) s = c;
  if (!s.ok()) return s;  // ~StagedFile removes the temporary
  return f;
}

Status StagedFile::Commit(std::span<const uint8_t> data) {
  const std::string tmp = path_ + ".tmp";
  KGR_ASSIGN_OR_RETURN(auto file, fs_.NewWritableFile(tmp, mode_));
  Status s = file->Append(data);
  if (s.ok()) s = file->Sync();
  Status c = file->Close();
  if (s.ok()) s = c;
  if (s.ok()) s = fs_.Rename(tmp, path_);
  if (!s.ok()) return s;
  committed_ = true;
  return fs_.SyncDir(DirName(path_));
}

StagedFile::~StagedFile() {
  if (!committed_) (void)fs_.Remove(path_ + ".tmp");
}

}  // namespace kgr
