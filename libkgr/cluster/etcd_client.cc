// EtcdClient: etcd's v3 JSON gateway over libcurl (one easy handle, kept
// alive), failover among the endpoints.
#include "cluster/etcd_client.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <nlohmann/json.hpp>

namespace kgr {
namespace {

using Json = nlohmann::json;

std::string ToBase64(std::span<const uint8_t> in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          in.data(), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string ToBase64(const std::string& s) {
  return ToBase64(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

StatusOr<Bytes> FromBase64(const std::string& in) {
  if (in.size() % 4 != 0) return DataLossError("etcd: bad base64");
  Bytes out(in.size() / 4 * 3);
  int n = EVP_DecodeBlock(out.data(),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return DataLossError("etcd: bad base64");
  size_t pad = 0;
  if (!in.empty() && in.back() == '=') ++pad;
  if (in.size() > 1 && in[in.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

// grpc-gateway writes int64 as strings and omits zero values.
int64_t Int64Field(const Json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) return 0;
  if (it->is_string()) return std::stoll(it->get<std::string>());
  if (it->is_number_integer()) return it->get<int64_t>();
  return 0;
}

StatusOr<EtcdRange> ParseRange(const Json& j) {
  EtcdRange r;
  if (auto h = j.find("header"); h != j.end()) {
    r.revision = Int64Field(*h, "revision");
  }
  r.count = Int64Field(j, "count");
  r.more = j.value("more", false);
  if (auto kvs = j.find("kvs"); kvs != j.end()) {
    for (const Json& kv : *kvs) {
      EtcdKeyValue e;
      KGR_ASSIGN_OR_RETURN(Bytes key, FromBase64(kv.value("key", "")));
      e.key.assign(key.begin(), key.end());
      KGR_ASSIGN_OR_RETURN(e.value, FromBase64(kv.value("value", "")));
      e.create_revision = Int64Field(kv, "create_revision");
      e.mod_revision = Int64Field(kv, "mod_revision");
      r.kvs.push_back(std::move(e));
    }
  }
  return r;
}

Json RangeRequest(const std::string& key, const std::string& range_end,
                  int64_t limit, int64_t min_mod_revision) {
  Json j = {{"key", ToBase64(key)}};
  if (!range_end.empty()) j["range_end"] = ToBase64(range_end);
  if (limit > 0) j["limit"] = std::to_string(limit);
  if (min_mod_revision > 0) {
    j["min_mod_revision"] = std::to_string(min_mod_revision);
  }
  return j;
}

Json OpJson(const EtcdOp& op) {
  switch (op.kind) {
    case EtcdOp::Kind::kPut:
      return {{"request_put",
               {{"key", ToBase64(op.key)}, {"value", ToBase64(op.value)}}}};
    case EtcdOp::Kind::kRange:
      return {{"request_range", RangeRequest(op.key, op.range_end, 0, 0)}};
    case EtcdOp::Kind::kDelete: {
      Json d = {{"key", ToBase64(op.key)}};
      if (!op.range_end.empty()) d["range_end"] = ToBase64(op.range_end);
      return {{"request_delete_range", d}};
    }
  }
  return {};
}

Json CompareJson(const EtcdCompare& c) {
  static const char* kResults[] = {"EQUAL", "NOT_EQUAL", "LESS", "GREATER"};
  const bool create = c.target == EtcdCompare::Target::kCreate;
  return {{"key", ToBase64(c.key)},
          {"target", create ? "CREATE" : "MOD"},
          {"result", kResults[static_cast<int>(c.result)]},
          {create ? "create_revision" : "mod_revision",
           std::to_string(c.revision)}};
}

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

std::string EtcdPrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    unsigned char c = static_cast<unsigned char>(end.back());
    if (c < 0xff) {
      end.back() = static_cast<char>(c + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

struct EtcdClient::Impl {
  EtcdOptions options;
  mutable std::mutex mu;
  CURL* curl = nullptr;
  curl_slist* headers = nullptr;
  char error[CURL_ERROR_SIZE] = {};  // libcurl's detail of the last failure
  size_t current = 0;                // endpoint index
  std::atomic<uint64_t> failovers{0};

  ~Impl() {
    if (curl != nullptr) curl_easy_cleanup(curl);
    if (headers != nullptr) curl_slist_free_all(headers);
  }

  std::string Url(size_t i, const char* path) const {
    const char* scheme = options.tls.ca_file.empty() ? "http://" : "https://";
    return scheme + options.endpoints[i] + path;
  }

  // One POST to endpoint `i`. A transport failure or an answer that says
  // "try another member" is UNAVAILABLE / DEADLINE_EXCEEDED.
  StatusOr<Json> PostOnce(size_t i, const char* path, const std::string& body) {
    std::string url = Url(i, path), answer;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE,
                     static_cast<long>(body.size()));
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    error[0] = '\0';
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      return DeadlineExceededError("etcd " + options.endpoints[i] + ": " +
                                   curl_easy_strerror(rc));
    }
    if (rc != CURLE_OK) {
      return UnavailableError("etcd " + options.endpoints[i] + ": " +
                              TransferError(rc));
    }
    long http = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http);
    Json j = Json::parse(answer, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      return UnavailableError("etcd " + options.endpoints[i] +
                              ": answer is not JSON (HTTP " +
                              std::to_string(http) + ")");
    }
    if (http != 200) {
      std::string msg = j.value("message", j.value("error", std::string()));
      // gRPC code 14 (unavailable: no leader, stopping), 4 (deadline).
      int64_t code = Int64Field(j, "code");
      std::string what = "etcd " + options.endpoints[i] + ": " + msg;
      if (code == 14 || code == 4 || http >= 500) {
        return UnavailableError(what);
      }
      return InvalidArgumentError(what);
    }
    return j;
  }

  // libcurl's detail, and for a TLS failure which option to check: the
  // server's certificate (--etcd-ca) or this client's (--etcd-cert/-key).
  std::string TransferError(CURLcode rc) const {
    std::string what = error[0] != '\0' ? error : curl_easy_strerror(rc);
    while (!what.empty() && what.back() == '\n') what.pop_back();
    what += " [curl " + std::to_string(static_cast<int>(rc)) + "]";
    switch (rc) {
      case CURLE_PEER_FAILED_VERIFICATION:
        return "TLS: etcd's certificate is not trusted (" + what +
               "; check --etcd-ca)";
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CACERT_BADFILE:
        return "TLS: " + what + " (check --etcd-ca, --etcd-cert, --etcd-key)";
      // etcd refusing this client's certificate shows, depending on when
      // its TLS 1.3 alert arrives, as any of these: over HTTP/2 (ALPN) as
      // CURLE_HTTP2 with "Send failure: Connection reset by peer", which
      // the line used to give without naming TLS or the option to check.
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_SSL_CLIENTCERT:
      case CURLE_HTTP2:
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
      case CURLE_GOT_NOTHING:
        if (options.tls.ca_file.empty()) return what;
        return "TLS: etcd refused the connection (" + what +
               "; a client certificate its --trusted-ca-file signed is "
               "needed: check --etcd-cert, --etcd-key)";
      default:
        return what;
    }
  }

  StatusOr<Json> Post(const char* path, const Json& request) {
    const std::string body = request.dump();
    std::lock_guard<std::mutex> lock(mu);
    Status last;
    for (size_t tried = 0; tried < options.endpoints.size(); ++tried) {
      size_t i = (current + tried) % options.endpoints.size();
      StatusOr<Json> j = PostOnce(i, path, body);
      if (j.ok() || (j.status().code() != StatusCode::kUnavailable &&
                     j.status().code() != StatusCode::kDeadlineExceeded)) {
        if (i != current) {
          spdlog::warn("etcd: now using {} ({})", options.endpoints[i],
                       last.message());
          current = i;
          failovers.fetch_add(1, std::memory_order_relaxed);
        }
        return j;
      }
      last = j.status();
    }
    return last;
  }
};

StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(
    const EtcdOptions& options) {
  if (options.endpoints.empty()) {
    return InvalidArgumentError("etcd: no endpoint");
  }
  GlobalInit();
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->curl = curl_easy_init();
  if (impl->curl == nullptr)
    return InternalError("etcd: curl_easy_init failed");
  CURL* c = impl->curl;
  impl->headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, impl->headers);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options.connect_timeout_ms));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(options.request_timeout_ms));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, impl->error);
  const EtcdTlsOptions& tls = options.tls;
  if (!tls.ca_file.empty()) {
    curl_easy_setopt(c, CURLOPT_CAINFO, tls.ca_file.c_str());
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return InvalidArgumentError("etcd: a client certificate needs its key");
  }
  if (!tls.cert_file.empty()) {
    curl_easy_setopt(c, CURLOPT_SSLCERT, tls.cert_file.c_str());
    curl_easy_setopt(c, CURLOPT_SSLKEY, tls.key_file.c_str());
  }
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(impl)));
}

EtcdClient::EtcdClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EtcdClient::~EtcdClient() = default;

StatusOr<EtcdRange> EtcdClient::Range(const std::string& key,
                                      const std::string& range_end,
                                      int64_t limit, int64_t min_mod_revision) {
  KGR_ASSIGN_OR_RETURN(
      Json j, impl_->Post("/v3/kv/range", RangeRequest(key, range_end, limit,
                                                       min_mod_revision)));
  return ParseRange(j);
}

StatusOr<int64_t> EtcdClient::Put(const std::string& key, const Bytes& value) {
  KGR_ASSIGN_OR_RETURN(Json j,
                       impl_->Post("/v3/kv/put", {{"key", ToBase64(key)},
                                                  {"value", ToBase64(value)}}));
  return Int64Field(j.value("header", Json::object()), "revision");
}

StatusOr<int64_t> EtcdClient::Delete(const std::string& key,
                                     const std::string& range_end) {
  Json req = {{"key", ToBase64(key)}};
  if (!range_end.empty()) req["range_end"] = ToBase64(range_end);
  KGR_ASSIGN_OR_RETURN(Json j, impl_->Post("/v3/kv/deleterange", req));
  return Int64Field(j, "deleted");
}

StatusOr<EtcdTxnResult> EtcdClient::Txn(
    const std::vector<EtcdCompare>& compares,
    const std::vector<EtcdOp>& success, const std::vector<EtcdOp>& failure) {
  Json req = {{"compare", Json::array()},
              {"success", Json::array()},
              {"failure", Json::array()}};
  for (const EtcdCompare& c : compares)
    req["compare"].push_back(CompareJson(c));
  for (const EtcdOp& op : success) req["success"].push_back(OpJson(op));
  for (const EtcdOp& op : failure) req["failure"].push_back(OpJson(op));
  KGR_ASSIGN_OR_RETURN(Json j, impl_->Post("/v3/kv/txn", req));
  EtcdTxnResult r;
  r.succeeded = j.value("succeeded", false);
  r.revision = Int64Field(j.value("header", Json::object()), "revision");
  if (auto rs = j.find("responses"); rs != j.end()) {
    for (const Json& one : *rs) {
      if (auto range = one.find("response_range"); range != one.end()) {
        KGR_ASSIGN_OR_RETURN(EtcdRange parsed, ParseRange(*range));
        r.ranges.push_back(std::move(parsed));
      }
    }
  }
  return r;
}

std::string EtcdClient::current_endpoint() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->options.endpoints[impl_->current];
}

uint64_t EtcdClient::failovers() const {
  return impl_->failovers.load(std::memory_order_relaxed);
}

}  // namespace kgr
