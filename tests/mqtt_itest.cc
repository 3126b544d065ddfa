// The MQTT transport against a real TLS Mosquitto (tests/harness/mosquitto.h).
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "harness/mosquitto.h"
#include "harness/net.h"
#include "kgr/mqtt.h"
#include "kgr/transport.h"
#include "mqtt_fixture.h"

namespace kgr {
namespace mqtt_test {
namespace {

// This process's TCP sockets connected to 127.0.0.1:`port`, found
// independently of the code under test.
std::vector<int> SocketsTo(int port) {
  std::vector<int> fds;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return fds;
  while (dirent* e = readdir(d)) {
    int fd = std::atoi(e->d_name);
    if (fd <= 2 || fd == dirfd(d)) continue;
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0 ||
        peer.sin_family != AF_INET || ntohs(peer.sin_port) != port ||
        peer.sin_addr.s_addr != htonl(INADDR_LOOPBACK)) {
      continue;
    }
    fds.push_back(fd);
  }
  closedir(d);
  return fds;
}

bool NoDelay(int fd) {
  int v = 0;
  socklen_t len = sizeof v;
  return getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0 && v != 0;
}

TEST_P(MqttITest, ExchangeBothWaysAndRegisterTopic) {
  Inbox& ks_in = NewInbox();
  Inbox& node_in = NewInbox();
  Transport* ks = Connect("ks", &ks_in);
  Transport* node = Connect("n0a1b2c3d", &node_in);
  ASSERT_NE(ks, nullptr);
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(ks->Subscribe("kgr/register").ok());
  ASSERT_TRUE(ks->Subscribe("kgr/ks/abcdefghijklmnop").ok());
  ASSERT_TRUE(node->Subscribe("kgr/n0a1b2c3d/qrstuvwxyz234567").ok());

  ASSERT_TRUE(node->Publish("kgr/register", B("register-me")).ok());
  ASSERT_TRUE(ks_in.WaitFor("register-me"));
  ASSERT_TRUE(ks->Publish("kgr/n0a1b2c3d/qrstuvwxyz234567", B("to-node")).ok());
  ASSERT_TRUE(node_in.WaitFor("to-node"));
  ASSERT_TRUE(node->Publish("kgr/ks/abcdefghijklmnop", B("to-ks")).ok());
  ASSERT_TRUE(ks_in.WaitFor("to-ks"));

  // Binary payloads (NULs, high bytes) arrive unchanged.
  Bytes bin = {0x00, 0xff, 0x80, 0x00, 0x01};
  ASSERT_TRUE(ks->Publish("kgr/n0a1b2c3d/qrstuvwxyz234567", bin).ok());
  ASSERT_TRUE(node_in.WaitFor(S(bin)));
  for (const auto& [topic, payload] : node_in.messages()) {
    EXPECT_EQ(topic, "kgr/n0a1b2c3d/qrstuvwxyz234567");
  }
}

TEST_P(MqttITest, PublishIsNeverRetained) {
  Inbox& ks_in = NewInbox();
  Inbox& node_in = NewInbox();
  Transport* ks = Connect("ks", &ks_in);
  Transport* node = Connect("n0a1b2c3d", &node_in);
  ASSERT_NE(ks, nullptr);
  ASSERT_NE(node, nullptr);
  const std::string topic = "kgr/n0a1b2c3d/late";
  ASSERT_TRUE(ks->Publish(topic, B("before-subscribe")).ok());
  // The KS's own PUBLISH round trip: once the KS got this back, the broker
  // has processed the earlier PUBLISH too.
  ASSERT_TRUE(ks->Subscribe("kgr/ks/sync").ok());
  ASSERT_TRUE(ks->Publish("kgr/ks/sync", B("sync")).ok());
  ASSERT_TRUE(ks_in.WaitFor("sync"));

  ASSERT_TRUE(node->Subscribe(topic).ok());
  ASSERT_TRUE(ks->Publish(topic, B("after-subscribe")).ok());
  ASSERT_TRUE(node_in.WaitFor("after-subscribe"));
  // A retained message would have been delivered on SUBSCRIBE, before.
  auto got = node_in.messages();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].second, "after-subscribe");
}

TEST_P(MqttITest, NoIdentityReadsAnotherIdentitysTopics) {
  Inbox& ks_in = NewInbox();
  Inbox& n1_in = NewInbox();
  Inbox& n2_in = NewInbox();
  Transport* ks = Connect("ks", &ks_in);
  Transport* n1 = Connect("n11111111", &n1_in);  // the eavesdropper
  Transport* n2 = Connect("n22222222", &n2_in);
  ASSERT_NE(ks, nullptr);
  ASSERT_NE(n1, nullptr);
  ASSERT_NE(n2, nullptr);
  ASSERT_TRUE(ks->Subscribe("kgr/register").ok());
  ASSERT_TRUE(n2->Subscribe("kgr/n22222222/secret").ok());
  ASSERT_TRUE(n1->Subscribe("kgr/n11111111/own").ok());

  // Mosquitto 2.0.11's acl_file never refuses a SUBSCRIBE (SUBACK 0; see
  // docs/broker.md, "ACL"): "read" is enforced per message at delivery. A
  // broker that refuses with 0x80 yields PERMISSION_DENIED. Either way no
  // message may reach the eavesdropper; anything else is an error.
  for (const std::string filter :
       {"kgr/#", "kgr/+/secret", "kgr/n22222222/#", "kgr/n22222222/secret",
        "kgr/register", "kgr/ks/#", "#"}) {
    Status s = n1->Subscribe(filter);
    EXPECT_TRUE(s.ok() || s.code() == StatusCode::kPermissionDenied)
        << filter << ": " << s.ToString();
    std::printf("eavesdropper SUBSCRIBE %-22s -> %s\n", filter.c_str(),
                s.ToString().c_str());
  }

  ASSERT_TRUE(ks->Publish("kgr/n22222222/secret", B("for-n2")).ok());
  ASSERT_TRUE(n2_in.WaitFor("for-n2"));
  ASSERT_TRUE(n2->Publish("kgr/register", B("n2-registers")).ok());
  ASSERT_TRUE(ks_in.WaitFor("n2-registers"));
  // The broker has routed both messages by now; a marker sent afterwards
  // into n1's own subtree arrives after anything n1 was going to get.
  ASSERT_TRUE(ks->Publish("kgr/n11111111/own", B("marker")).ok());
  ASSERT_TRUE(n1_in.WaitFor("marker"));
  for (const auto& [topic, payload] : n1_in.messages()) {
    EXPECT_EQ(topic.rfind("kgr/n11111111/", 0), 0u) << topic;
    EXPECT_NE(payload, "for-n2");
    EXPECT_NE(payload, "n2-registers");
  }
}

TEST_P(MqttITest, ClientWithoutCertificateCannotConnect) {
  auto opts = Options("n0a1b2c3d");
  ASSERT_TRUE(opts.ok());
  opts->cert_file.clear();
  opts->key_file.clear();
  opts->connect_timeout_ms = 3000;
  auto t = NewMqttTransport(*opts);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  Status s = (*t)->Connect();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  std::printf("no client certificate: %s\n", s.ToString().c_str());
  EXPECT_EQ((*t)->Publish("kgr/register", B("x")).code(),
            StatusCode::kFailedPrecondition);
}

TEST_P(MqttITest, CertificateFromAnotherCaCannotConnect) {
  const std::string foreign = dir_ + "/foreign";
  ASSERT_TRUE(harness::RunProvisioning("make-ca.sh", {foreign}).ok());
  ASSERT_TRUE(
      harness::RunProvisioning("issue-cert.sh", {foreign, "n0a1b2c3d"}).ok());
  auto opts = Options("n0a1b2c3d");
  ASSERT_TRUE(opts.ok());
  opts->connect_timeout_ms = 3000;

  MqttOptions foreign_client = *opts;  // right CA, foreign client cert
  foreign_client.cert_file = foreign + "/n0a1b2c3d.crt";
  foreign_client.key_file = foreign + "/n0a1b2c3d.key";
  auto t = NewMqttTransport(foreign_client);
  ASSERT_TRUE(t.ok());
  Status s = (*t)->Connect();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();

  MqttOptions foreign_trust = *opts;  // the broker is not trusted
  foreign_trust.ca_file = foreign + "/ca.crt";
  auto t2 = NewMqttTransport(foreign_trust);
  ASSERT_TRUE(t2.ok());
  s = (*t2)->Connect();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  std::printf("untrusted broker: %s\n", s.ToString().c_str());
}

TEST_P(MqttITest, ReconnectAndResubscribeAfterBrokerRestart) {
  Inbox& ks_in = NewInbox();
  Inbox& node_in = NewInbox();
  Transport* ks = Connect("ks", &ks_in);
  Transport* node = Connect("n0a1b2c3d", &node_in);
  ASSERT_NE(ks, nullptr);
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(ks->Subscribe("kgr/ks/in").ok());
  ASSERT_TRUE(node->Subscribe("kgr/n0a1b2c3d/in").ok());
  ASSERT_TRUE(ks->Publish("kgr/n0a1b2c3d/in", B("before")).ok());
  ASSERT_TRUE(node_in.WaitFor("before"));

  Status s = broker_->Restart();  // persistence off: sessions are gone
  ASSERT_TRUE(s.ok()) << s.ToString();

  // Probe until the subscription is back on the fresh broker; publishes
  // during the outage are buffered by the client, so probes may also arrive
  // late. Only the overall deadline bounds this.
  auto probe = [](Transport* from, const std::string& topic, Inbox* to,
                  const std::string& tag) {
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    for (int i = 0; Clock::now() < deadline; ++i) {
      std::string text = tag + std::to_string(i);
      Status ps = from->Publish(topic, B(text));
      EXPECT_TRUE(ps.ok() || ps.code() == StatusCode::kUnavailable)
          << ps.ToString();
      if (to->WaitFor(text, std::chrono::milliseconds(300))) return true;
    }
    return false;
  };
  EXPECT_TRUE(probe(ks, "kgr/n0a1b2c3d/in", &node_in, "ks-to-node-"));
  EXPECT_TRUE(probe(node, "kgr/ks/in", &ks_in, "node-to-ks-"));
  ASSERT_TRUE(ks->Publish("kgr/n0a1b2c3d/in", B("after")).ok());
  EXPECT_TRUE(node_in.WaitFor("after"));

  // The new sockets got TCP_NODELAY too.
  auto fds = SocketsTo(broker_->port());
  EXPECT_EQ(fds.size(), 2u);
  for (int fd : fds) EXPECT_TRUE(NoDelay(fd)) << "fd " << fd;
}

// The broker is away for longer than the first retry: the transports keep
// retrying (with back-off) and come back, twice in a row.
TEST_P(MqttITest, ReconnectAfterOutagesLongerThanTheFirstRetry) {
  Inbox& ks_in = NewInbox();
  Inbox& node_in = NewInbox();
  Transport* ks = Connect("ks", &ks_in);
  Transport* node = Connect("n0a1b2c3d", &node_in);
  ASSERT_NE(ks, nullptr);
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(node->Subscribe("kgr/n0a1b2c3d/in").ok());
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round);
    broker_->Stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    // Publishing while the broker is down is accepted (queued).
    ASSERT_TRUE(ks->Publish("kgr/n0a1b2c3d/in", B("queued")).ok());
    Status s = broker_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    // The fresh broker has no sessions: probe until the node's
    // resubscription is in place and the KS's connection carries messages.
    bool arrived = false;
    const auto deadline = Clock::now() + std::chrono::seconds(15);
    for (int i = 0; !arrived && Clock::now() < deadline; ++i) {
      const std::string text =
          "r" + std::to_string(round) + "-" + std::to_string(i);
      ASSERT_TRUE(ks->Publish("kgr/n0a1b2c3d/in", B(text)).ok());
      arrived = node_in.WaitFor(text, std::chrono::milliseconds(300));
    }
    EXPECT_TRUE(arrived);
  }
}

TEST_P(MqttITest, TcpNoDelayIsSetOnClientSockets) {
  Inbox& a_in = NewInbox();
  Inbox& b_in = NewInbox();
  Transport* a = Connect("ks", &a_in);
  Transport* b = Connect("n0a1b2c3d", &b_in);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto fds = SocketsTo(broker_->port());
  ASSERT_EQ(fds.size(), 2u);  // one per transport
  for (int fd : fds) EXPECT_TRUE(NoDelay(fd)) << "fd " << fd;

  // Informational: 20 ping-pongs (40 QoS 1 messages). With Nagle on the
  // client side this takes ~40 ms per exchange; not asserted.
  ASSERT_TRUE(a->Subscribe("kgr/ks/pong").ok());
  ASSERT_TRUE(b->Subscribe("kgr/n0a1b2c3d/ping").ok());
  const auto start = Clock::now();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(
        a->Publish("kgr/n0a1b2c3d/ping", B("ping" + std::to_string(i))).ok());
    ASSERT_TRUE(b_in.WaitFor("ping" + std::to_string(i)));
    ASSERT_TRUE(b->Publish("kgr/ks/pong", B("pong" + std::to_string(i))).ok());
    ASSERT_TRUE(a_in.WaitFor("pong" + std::to_string(i)));
  }
  const double ms =
      std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  std::printf("20 ping-pongs over TLS MQTT: %.2f ms (%.3f ms per exchange)\n",
              ms, ms / 20);
}

// After a certificate renewal the node replaces its cert and key files and
// calls Reconnect(): the next connection must use the new files. Here the
// new certificate is another identity's (CN n0a1b2c3e), which the broker
// shows: it delivers kgr/n0a1b2c3e/... only to that user (ACL "read" is
// checked per message), so what arrives there proves the new files were
// read, without a restart of the transport.
TEST_P(MqttITest, ReconnectReadsTheRenewedCertificateFiles) {
  auto old_cert = broker_->IssueClient("n0a1b2c3d");
  auto new_cert = broker_->IssueClient("n0a1b2c3e");
  ASSERT_TRUE(old_cert.ok() && new_cert.ok());
  const std::string cert = dir_ + "/node-cert.pem",
                    key = dir_ + "/node-key.pem";
  auto install = [&](const harness::ClientCert& c) {
    // As the node installs them: written aside, renamed over.
    ASSERT_EQ(std::system(("cp " + c.cert_file + " " + cert + ".new && cp " +
                           c.key_file + " " + key + ".new && mv " + key +
                           ".new " + key + " && mv " + cert + ".new " + cert)
                              .c_str()),
              0);
  };
  install(*old_cert);
  auto opts = Options("n0a1b2c3d");
  ASSERT_TRUE(opts.ok());
  opts->cert_file = cert;
  opts->key_file = key;
  Inbox& ks_in = NewInbox();
  Inbox& node_in = NewInbox();
  Transport* ks = Connect("ks", &ks_in);
  Transport* node = ConnectWith(*opts, &node_in);
  ASSERT_NE(ks, nullptr);
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(node->Subscribe("kgr/n0a1b2c3d/in").ok());
  Status sub = node->Subscribe("kgr/n0a1b2c3e/in");  // not readable yet
  ASSERT_TRUE(sub.ok() || sub.code() == StatusCode::kPermissionDenied);
  ASSERT_TRUE(ks->Publish("kgr/n0a1b2c3e/in", B("to-e-before")).ok());
  ASSERT_TRUE(ks->Publish("kgr/n0a1b2c3d/in", B("to-d-before")).ok());
  ASSERT_TRUE(node_in.WaitFor("to-d-before"));
  EXPECT_FALSE(node_in.Has("to-e-before"));

  install(*new_cert);
  Status rc = node->Reconnect();
  ASSERT_TRUE(rc.ok()) << rc.ToString();
  bool arrived = false;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  for (int i = 0; !arrived && Clock::now() < deadline; ++i) {
    const std::string text = "to-e-" + std::to_string(i);
    // The held subscription, or a new one once the identity changed.
    if (i % 5 == 4) (void)node->Subscribe("kgr/n0a1b2c3e/in");
    ASSERT_TRUE(ks->Publish("kgr/n0a1b2c3e/in", B(text)).ok());
    arrived = node_in.WaitFor(text, std::chrono::milliseconds(300));
  }
  EXPECT_TRUE(arrived) << "the reconnection did not use the new certificate";
  // Publishing works on the new connection too.
  ASSERT_TRUE(ks->Subscribe("kgr/ks/in").ok());
  ASSERT_TRUE(node->Publish("kgr/ks/in", B("from-e")).ok());
  EXPECT_TRUE(ks_in.WaitFor("from-e"));
}

// A process with many open files: the client's socket gets a descriptor
// above FD_SETSIZE. Either the connection works, or Connect fails with an
// error that says why; never a crash or a hang.
TEST_P(MqttITest, SocketDescriptorAboveFdSetSize) {
  // Restored however the test ends: the limit and the filler descriptors.
  struct Restore {
    rlimit rl{};
    std::vector<int> filler;
    ~Restore() {
      for (int fd : filler) ::close(fd);
      setrlimit(RLIMIT_NOFILE, &rl);
    }
  } restore;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &restore.rl), 0);
  if (restore.rl.rlim_cur < 2 * FD_SETSIZE) {
    rlimit raised = restore.rl;
    raised.rlim_cur = std::min<rlim_t>(2 * FD_SETSIZE, restore.rl.rlim_max);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &raised), 0);
  }
  std::vector<int>& filler = restore.filler;
  while (filler.empty() || filler.back() < FD_SETSIZE + 8) {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    filler.push_back(fd);
  }
  if (filler.empty() || filler.back() < FD_SETSIZE + 8) {
    GTEST_SKIP() << "cannot open more than " << FD_SETSIZE << " files";
  }
  auto opts = Options("n0a1b2c3d");
  ASSERT_TRUE(opts.ok());
  opts->connect_timeout_ms = 5000;
  auto t = NewMqttTransport(*opts);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  Inbox& in = NewInbox();
  (*t)->SetHandler(in.Handler());
  const auto start = Clock::now();
  Status st = (*t)->Connect();
  const double s = std::chrono::duration<double>(Clock::now() - start).count();
  if (st.ok()) {
    ASSERT_TRUE((*t)->Subscribe("kgr/n0a1b2c3d/self").ok());
    ASSERT_TRUE((*t)->Publish("kgr/n0a1b2c3d/self", B("high fd")).ok());
    EXPECT_TRUE(in.WaitFor("high fd"));
    EXPECT_TRUE((*t)->Disconnect().ok());
  } else {
    EXPECT_NE(st.message().find("FD_SETSIZE"), std::string::npos)
        << st.ToString();
    EXPECT_LT(s, 2.0) << "the failure should be immediate: " << st.ToString();
  }
  std::printf("%s with a socket above FD_SETSIZE: %s\n",
              std::string(MqttClientName(GetParam())).c_str(),
              st.ok() ? "works" : st.ToString().c_str());
  t->reset();
}

INSTANTIATE_TEST_SUITE_P(Clients, MqttITest, BothClients(), ClientName);

}  // namespace
}  // namespace mqtt_test
}  // namespace kgr
