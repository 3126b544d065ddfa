#include "kgr/metrics_http.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace kgr {
namespace {

using Result = HttpRequestHead::Result;

TEST(HttpParseTest, GetMetrics) {
  HttpRequestHead h = ParseHttpRequestHead(
      "GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n");
  ASSERT_EQ(h.result, Result::kComplete) << h.error;
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.path, "/metrics");
  EXPECT_EQ(ParseHttpRequestHead("GET / HTTP/1.0\n\n").result,
            Result::kComplete);
}

TEST(HttpParseTest, IncompleteUntilBlankLine) {
  EXPECT_EQ(ParseHttpRequestHead("").result, Result::kIncomplete);
  EXPECT_EQ(ParseHttpRequestHead("GET /metrics HTTP/1.1\r\nHost: x\r\n").result,
            Result::kIncomplete);
}

TEST(HttpParseTest, BadRequests) {
  for (const char* bad : {
           "GET\r\n\r\n",                               // no target
           "GET /metrics\r\n\r\n",                      // no version
           "GET  /metrics HTTP/1.1\r\n\r\n",            // two spaces
           "GET /metrics HTTP/1.1 x\r\n\r\n",           // four parts
           "get /metrics HTTP/1.1\r\n\r\n",             // lower-case method
           "GET metrics HTTP/1.1\r\n\r\n",              // not a path
           "GET /metrics HTTP/2.0\r\n\r\n",             // version
           "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n",  // header
           "GET /metrics HTTP/1.1\r\n: empty\r\n\r\n",  // empty header name
           "GET /metrics HTTP/1.1\r\n folded\r\n\r\n",  // obsolete folding
           "GET /met\x01rics HTTP/1.1\r\n\r\n",         // control in target
       }) {
    EXPECT_EQ(ParseHttpRequestHead(bad).result, Result::kBad) << bad;
  }
  std::string nul("GET /metrics HTTP/1.1\r\nA: b\0c\r\n\r\n", 34);
  EXPECT_EQ(ParseHttpRequestHead(nul).result, Result::kBad);
}

TEST(HttpParseTest, TooLarge) {
  std::string big =
      "GET /metrics HTTP/1.1\r\nX: " + std::string(kMaxRequestBytes, 'a');
  EXPECT_EQ(ParseHttpRequestHead(big).result, Result::kTooLarge);
  EXPECT_EQ(ParseHttpRequestHead(big + "\r\n\r\n").result, Result::kTooLarge);
}

TEST(HttpAnswerTest, StatusCodes) {
  int renders = 0;
  auto render = [&]() -> std::optional<std::string> {
    ++renders;
    return std::string("m 1\n");
  };
  auto answer = [&](std::string_view req) {
    return HttpAnswer(ParseHttpRequestHead(req), render);
  };
  std::string ok = answer("GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(ok.find("Content-Length: 4\r\n"), std::string::npos);
  EXPECT_EQ(ok.substr(ok.size() - 4), "m 1\n");
  std::string head = answer("HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");
  EXPECT_EQ(renders, 2);
  EXPECT_EQ(answer("GET / HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(answer("POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0),
            0u);
  EXPECT_EQ(answer("BAD\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(renders, 2);  // only GET/HEAD /metrics render
  std::string busy =
      HttpAnswer(ParseHttpRequestHead("GET /metrics HTTP/1.1\n\n"),
                 [] { return std::optional<std::string>(); });
  EXPECT_EQ(busy.rfind("HTTP/1.1 503", 0), 0u);
}

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

std::string Exchange(int port, const std::string& request) {
  int fd = Connect(port);
  if (fd < 0) return "connect failed";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, n);
  ::close(fd);
  return out;
}

TEST(MetricsServerTest, ServesAndRefuses) {
  auto server = MetricsServer::Start(
      "127.0.0.1:0", [] { return std::optional<std::string>("kgr_up 1\n"); });
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  int port = (*server)->port();
  ASSERT_GT(port, 0);
  std::string ok = Exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK", 0), 0u) << ok;
  EXPECT_NE(ok.find("\r\n\r\nkgr_up 1\n"), std::string::npos);
  EXPECT_EQ(Exchange(port, "GET /x HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0),
            0u);
  EXPECT_EQ(Exchange(port, "junk\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  std::string big(kMaxRequestBytes + 100, 'a');
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\nX: " + big)
                .rfind("HTTP/1.1 431", 0),
            0u);
}

TEST(MetricsServerTest, SilentClientsDoNotBlockOthersAndAreCut) {
  auto server = MetricsServer::Start(
      "127.0.0.1:0", [] { return std::optional<std::string>("kgr_up 1\n"); });
  ASSERT_TRUE(server.ok());
  int port = (*server)->port();
  // More idle connections than the limit: the scrape after them is refused
  // at accept while they are open, but the server keeps running.
  std::vector<int> idle;
  for (size_t i = 0; i < kMaxConnections; ++i) idle.push_back(Connect(port));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n"), "");
  // The idle ones are closed at their deadline.
  char c;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(::recv(idle[0], &c, 1, 0), 0);
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_LT(waited, std::chrono::milliseconds(kConnectionMs + 1000));
  for (int fd : idle) ::close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(
      Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200", 0),
      0u);
}

TEST(MetricsServerTest, RefusesBadAddress) {
  auto render = [] { return std::optional<std::string>(""); };
  EXPECT_FALSE(MetricsServer::Start("example.com:9100", render).ok());
  EXPECT_FALSE(MetricsServer::Start("9100", render).ok());
}

}  // namespace
}  // namespace kgr
