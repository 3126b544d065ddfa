// Loopback helpers for the test harness.
#ifndef KGR_TESTS_HARNESS_NET_H_
#define KGR_TESTS_HARNESS_NET_H_

#include <string>
#include <vector>

namespace kgr::harness {

// A TCP port on 127.0.0.1 that was free when asked (bind to port 0, read it
// back, close). `consecutive` > 1 asks for that many free ports in a row
// (swtpm uses P and P+1); the first one is returned.
int FreeLoopbackPort(int consecutive = 1);

// Polls until something accepts TCP connections on 127.0.0.1:`port`, or
// `timeout_ms` passes. Returns whether it connected.
bool WaitForPort(int port, int timeout_ms);

// A fresh directory under $TMPDIR (or /tmp), removed by RemoveTree.
std::string MakeTempDir(const std::string& tag);
void RemoveTree(const std::string& path);

// Starts argv[0] (a path) with stdin from /dev/null and stdout and stderr
// appended to `log_file`; returns the PID, or -1 if it could not start.
int SpawnLogged(const std::vector<std::string>& argv,
                const std::string& log_file);

// Sends SIGTERM to `pid`, waits up to `grace_ms`, then SIGKILL; reaps it.
void StopProcess(int pid, int grace_ms = 3000);

}  // namespace kgr::harness

#endif  // KGR_TESTS_HARNESS_NET_H_
