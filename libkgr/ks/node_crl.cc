// The KS's node CRL: the serials its node CA signed, recorded before they
// go out, and the CRL of those issued to revoked nodes (ks/node_crl.h).
#include "ks/node_crl.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <string_view>

#include "kgr/key_server.h"
#include "kgr/topic.h"
#include "ks/context.h"

namespace kgr::ks {
namespace {

FileSystem& Files(const Context& ctx) {
  return ctx.options.node_files ? *ctx.options.node_files
                                : *DefaultFileSystem();
}

int64_t NowSeconds(Context& ctx) {
  return static_cast<int64_t>(ctx.clock.NowUnixMicros() / 1'000'000);
}

template <typename T>
bool ParseNumber(std::string_view text, T* out, int base) {
  auto [end, ec] =
      std::from_chars(text.data(), text.data() + text.size(), *out, base);
  return ec == std::errc() && end == text.data() + text.size();
}

// One complete line of the record file into `state`; false if malformed.
bool ParseLine(std::string_view line, NodeCrlState* state) {
  std::vector<std::string_view> f;
  for (size_t at = 0; at <= line.size();) {
    size_t sp = std::min(line.find(' ', at), line.size());
    f.push_back(line.substr(at, sp - at));
    at = sp + 1;
  }
  uint32_t n_id = 0;
  int64_t time = 0;
  if (f.size() < 3 || f[1].size() != 8 || !ParseNumber(f[1], &n_id, 16)) {
    return false;
  }
  if (f[0] == "cert" && f.size() == 4 && !f[2].empty() &&
      f[2].find_first_not_of("0123456789ABCDEFabcdef") == f[2].npos &&
      ParseNumber(f[3], &time, 10)) {
    state->issued.push_back({n_id, std::string(f[2]), time});
    return true;
  }
  if (f[0] == "revoked" && f.size() == 3 && ParseNumber(f[2], &time, 10)) {
    state->revoked_at.emplace(n_id, time);
    return true;
  }
  return false;
}

std::string IssuedLine(const NodeCrlState::Issued& e) {
  return "cert " + FormatNodeId(e.n_id) + " " + e.serial_hex + " " +
         std::to_string(e.not_after) + "\n";
}

std::string RevokedLine(uint32_t n_id, int64_t at) {
  return "revoked " + FormatNodeId(n_id) + " " + std::to_string(at) + "\n";
}

Status AppendSynced(Context& ctx, const std::string& line) {
  FileSystem& fs = Files(ctx);
  const std::string& path = ctx.options.node_certs_file;
  const bool created = !fs.Exists(path);
  KGR_ASSIGN_OR_RETURN(auto file, fs.NewAppendableFile(path, 0600));
  KGR_RETURN_IF_ERROR(file->Append(AsBytes(line)));
  KGR_RETURN_IF_ERROR(file->Sync());
  KGR_RETURN_IF_ERROR(file->Close());
  return created ? fs.SyncDir(DirName(path)) : OkStatus();
}

// Reads the record file once; rewrites it without a torn tail and without
// expired certificates (and the "revoked" lines only they needed).
Status Load(Context& ctx) {
  NodeCrlState& s = ctx.node_crl;
  if (s.loaded) return OkStatus();
  FileSystem& fs = Files(ctx);
  const std::string& path = ctx.options.node_certs_file;
  auto bytes = fs.ReadFile(path);
  if (!bytes.ok() && bytes.status().code() != StatusCode::kNotFound) {
    return bytes.status();
  }
  NodeCrlState read;
  std::string_view text;
  if (bytes.ok()) {
    text = {reinterpret_cast<const char*>(bytes->data()), bytes->size()};
  }
  size_t line_no = 0, at = 0;
  for (size_t nl; (nl = text.find('\n', at)) != text.npos; at = nl + 1) {
    ++line_no;
    if (!ParseLine(text.substr(at, nl - at), &read)) {
      return DataLossError(path + " line " + std::to_string(line_no) +
                           " is malformed");
    }
  }
  const int64_t now = NowSeconds(ctx);
  const size_t before = read.issued.size();
  std::erase_if(read.issued, [now](const NodeCrlState::Issued& e) {
    return e.not_after < now;
  });
  std::erase_if(read.revoked_at, [&read](const auto& r) {
    return std::none_of(read.issued.begin(), read.issued.end(),
                        [&r](const auto& e) { return e.n_id == r.first; });
  });
  if (at != text.size() || read.issued.size() != before) {
    if (at != text.size()) {
      spdlog::warn(
          "ks: {}: torn last line dropped (its certificate was "
          "never sent)",
          path);
    }
    std::string kept;
    for (const auto& e : read.issued) kept += IssuedLine(e);
    for (const auto& [n_id, t] : read.revoked_at) kept += RevokedLine(n_id, t);
    KGR_RETURN_IF_ERROR(fs.WriteFileAtomic(path, AsBytes(kept), 0600));
  }
  read.loaded = true;
  read.due_unix_ms = s.due_unix_ms;
  read.number = s.number;
  s = std::move(read);
  return OkStatus();
}

// The CRL's entries: the unexpired certificates of revoked nodes. A
// revoked node without its "revoked" line gets one now.
StatusOr<std::vector<CertificateAuthority::Revoked>> RevokedCertificates(
    Context& ctx) {
  NodeCrlState& s = ctx.node_crl;
  const int64_t now = NowSeconds(ctx);
  std::vector<CertificateAuthority::Revoked> out;
  for (const auto& e : s.issued) {
    if (e.not_after < now) continue;
    auto node = FindNode(ctx, e.n_id);
    if (!node.ok() || (*node)->state != NodeState::kRevoked) continue;
    auto when = s.revoked_at.find(e.n_id);
    if (when == s.revoked_at.end()) {
      KGR_RETURN_IF_ERROR(AppendSynced(ctx, RevokedLine(e.n_id, now)));
      when = s.revoked_at.emplace(e.n_id, now).first;
    }
    out.push_back({e.serial_hex, when->second});
  }
  return out;
}

}  // namespace

Status RecordIssuedCertificate(Context& ctx, uint32_t n_id,
                               const CertificateInfo& info) {
  if (ctx.options.node_certs_file.empty()) return OkStatus();
  KGR_RETURN_IF_ERROR(Load(ctx));
  NodeCrlState::Issued e{n_id, info.serial_hex, info.not_after};
  KGR_RETURN_IF_ERROR(AppendSynced(ctx, IssuedLine(e)));
  ctx.node_crl.issued.push_back(std::move(e));
  return OkStatus();
}

Status PublishNodeCrl(Context& ctx) {
  const KeyServerOptions& o = ctx.options;
  if (!o.node_ca.has_value() || o.node_crl_file.empty()) return OkStatus();
  if (!o.node_certs_file.empty()) KGR_RETURN_IF_ERROR(Load(ctx));
  KGR_ASSIGN_OR_RETURN(auto revoked, RevokedCertificates(ctx));
  NodeCrlState& s = ctx.node_crl;
  // Increasing across restarts too: the time, or one more than the last.
  s.number = std::max(s.number + 1, static_cast<uint64_t>(NowSeconds(ctx)));
  KGR_ASSIGN_OR_RETURN(std::string pem,
                       o.node_ca->SignCrl(revoked, kNodeCrlSeconds, s.number));
  KGR_RETURN_IF_ERROR(
      Files(ctx).WriteFileAtomic(o.node_crl_file, AsBytes(pem), 0644));
  spdlog::info("ks: node CRL {} written ({} revoked certificate(s))",
               o.node_crl_file, revoked.size());
  if (o.node_crl_written) {
    KGR_RETURN_IF_ERROR(o.node_crl_written(o.node_crl_file));
  }
  s.due_unix_ms = ctx.clock.NowUnixMicros() / 1000 + kNodeCrlRefreshMs;
  return OkStatus();
}

void RefreshNodeCrl(Context& ctx) {
  const KeyServerOptions& o = ctx.options;
  if (!o.node_ca.has_value() || o.node_crl_file.empty()) return;
  const uint64_t now_ms = ctx.clock.NowUnixMicros() / 1000;
  if (now_ms < ctx.node_crl.due_unix_ms) return;
  Status st = PublishNodeCrl(ctx);
  if (!st.ok()) {
    spdlog::error("ks: node CRL not published (retry in {} s): {}",
                  kNodeCrlRetryMs / 1000, st.ToString());
    ctx.node_crl.due_unix_ms = now_ms + kNodeCrlRetryMs;
  }
}

}  // namespace kgr::ks
