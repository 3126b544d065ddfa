// EtcdKsState: the KS state on etcd (kgr/cluster.h): the domain check at
// open, the two tables, and the thread that polls node_desc for changes
// other instances made.
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <thread>

#include "cluster/etcd_client.h"
#include "cluster/etcd_tables.h"
#include "kgr/cluster.h"

namespace kgr {
namespace {

// <prefix>/domain: created with the state; afterwards it must match the
// member's domain key (same domain, same generation, same key).
Status CheckDomain(EtcdClient& client, const std::string& prefix,
                   const DomainKey& key) {
  const std::string name = prefix + "/domain";
  const Bytes mine = DomainCheckValue(key);
  KGR_ASSIGN_OR_RETURN(
      EtcdTxnResult r,
      client.Txn({{name, EtcdCompare::Target::kCreate,
                   EtcdCompare::Result::kEqual, 0}},
                 {EtcdOp::Put(name, mine)}, {EtcdOp::Get(name)}));
  if (r.succeeded) {
    spdlog::info("etcd: new KS state at {} (domain {:08x}, key generation {})",
                 prefix, key.domain_id, key.generation);
    return OkStatus();
  }
  if (r.ranges.empty() || r.ranges[0].kvs.empty()) {
    return UnavailableError("etcd: " + name + " vanished");
  }
  const Bytes& stored = r.ranges[0].kvs[0].value;
  if (stored != mine) {
    return FailedPreconditionError(
        "etcd state " + prefix +
        " belongs to another domain key (another domain, or a generation "
        "this member does not hold: join or update the member)");
  }
  return OkStatus();
}

class EtcdState final : public EtcdKsState {
 public:
  EtcdState(const EtcdStateOptions& o, DomainKey key,
            std::unique_ptr<EtcdClient> client,
            std::unique_ptr<EtcdClient> poller,
            std::unique_ptr<EtcdClient> writer)
      : options_(o),
        key_(std::move(key)),
        codec_(key_.keys, key_.domain_id),
        client_(std::move(client)),
        poller_(std::move(poller)),
        writer_(std::move(writer)),
        nodes_(*client_, codec_, o.prefix),
        gen_keys_(*client_, *writer_, codec_, o.prefix),
        ac_floor_(*client_, key_.keys, o.prefix) {}

  ~EtcdState() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    gen_keys_.Stop();  // sends what waits
  }

  Status Start() {
    KGR_RETURN_IF_ERROR(CheckDomain(*client_, options_.prefix, key_));
    KGR_RETURN_IF_ERROR(nodes_.Load());
    thread_ = std::thread([this] { PollLoop(); });
    return OkStatus();
  }

  NodeDescTable& nodes() override { return nodes_; }
  GenKeysTable& gen_keys() override { return gen_keys_; }
  AcFloor* ac_floor() override { return &ac_floor_; }
  uint64_t failovers() const override {
    return client_->failovers() + poller_->failovers() + writer_->failovers();
  }

 private:
  void PollLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    bool failing = false;
    while (!cv_.wait_for(lock, std::chrono::milliseconds(options_.poll_ms),
                         [this] { return stop_; })) {
      lock.unlock();
      Status st = nodes_.Poll(*poller_);
      if (!st.ok() && !failing) {
        spdlog::warn("etcd: node_desc changes not read: {}", st.ToString());
      }
      failing = !st.ok();
      lock.lock();
    }
  }

  const EtcdStateOptions options_;
  const DomainKey key_;
  const RecordCodec codec_;
  std::unique_ptr<EtcdClient> client_;  // the KS's calls
  std::unique_ptr<EtcdClient> poller_;  // the polling thread's
  std::unique_ptr<EtcdClient> writer_;  // gen_keys' writer thread's
  EtcdNodeDescTable nodes_;
  EtcdGenKeysTable gen_keys_;
  EtcdAcFloor ac_floor_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

StatusOr<std::unique_ptr<EtcdKsState>> EtcdKsState::Open(
    const EtcdStateOptions& options, const DomainKey& key) {
  if (options.prefix.empty() || options.prefix[0] != '/') {
    return InvalidArgumentError("etcd state: prefix must start with '/'");
  }
  if (!key.keys.valid()) return InvalidArgumentError("etcd state: no key");
  KGR_ASSIGN_OR_RETURN(auto client, EtcdClient::Create(options.etcd));
  KGR_ASSIGN_OR_RETURN(auto poller, EtcdClient::Create(options.etcd));
  KGR_ASSIGN_OR_RETURN(auto writer, EtcdClient::Create(options.etcd));
  DomainKey prepared = key.Clone();
  KGR_RETURN_IF_ERROR(prepared.keys.Prepare());
  auto state = std::make_unique<EtcdState>(options, std::move(prepared),
                                           std::move(client), std::move(poller),
                                           std::move(writer));
  KGR_RETURN_IF_ERROR(state->Start());
  return std::unique_ptr<EtcdKsState>(std::move(state));
}

}  // namespace kgr
