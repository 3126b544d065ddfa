// Example sensor application in C++ (the twin of examples/sensor.py, same
// flags and output): sends a reading to the collector node every second, as
// one-way messages through this node's kgr daemon (docs/api.md).
//
//   kgr-example-sensor --socket STATE_DIR/app.sock --collector N_ID
//                      [--interval S] [--count N]
//
// A reading the daemon could not deliver (broker or key server away, the
// collector's daemon restarting, no collector running) is sent again until
// it is accepted, so none is skipped; if the daemon itself restarts, the
// sensor connects again. Key renewals need nothing from the application.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

#include "kgr/app_client.h"

namespace {

struct Flags {
  std::string socket;
  uint32_t collector = 0;  // the collector node's N_ID
  double interval_s = 1.0;
  uint64_t count = 0;  // 0: forever
};

// Parses all of `text` as a number (integers in `base...`, if given).
template <typename T, typename... Base>
bool ParseAll(std::string_view text, T* out, Base... base) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out, base...);
  return ec == std::errc() && ptr == end;
}

// Reads --flag VALUE or --flag=VALUE; on bad input, one line saying why.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  bool have_socket = false, have_collector = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string flag = arg.substr(0, arg.find('='));
    std::string value;
    if (flag.size() < arg.size()) {
      value = arg.substr(flag.size() + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::cerr << "sensor: " << flag << " needs a value\n";
      return false;
    }
    bool ok = true;
    if (flag == "--socket") {
      flags->socket = value;
      ok = have_socket = !value.empty();
    } else if (flag == "--collector") {
      ok = have_collector =
          value.size() <= 8 && ParseAll(value, &flags->collector, 16);
    } else if (flag == "--interval") {
      ok = ParseAll(value, &flags->interval_s) && flags->interval_s >= 0;
    } else if (flag == "--count") {
      ok = ParseAll(value, &flags->count);
    } else {
      std::cerr << "sensor: unknown flag " << flag << "\n";
      return false;
    }
    if (!ok) {
      std::cerr << "sensor: bad " << flag << ": '" << value << "'\n";
      return false;
    }
  }
  if (!have_socket || !have_collector) {
    std::cerr << "usage: kgr-example-sensor --socket STATE_DIR/app.sock "
                 "--collector N_ID [--interval S] [--count N]\n";
    return false;
  }
  return true;
}

void Sleep(double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}

double Round(double x, int digits) {
  double scale = std::pow(10.0, digits);
  return std::round(x * scale) / scale;
}

// Connects to the node daemon, waiting for it if it is not running.
std::unique_ptr<kgr::AppClient> Connect(const std::string& socket) {
  for (;;) {
    auto app = kgr::AppClient::Connect(socket, "sensor");
    if (app.ok()) return std::move(*app);
    std::cout << "sensor: daemon not reachable (" << app.status().ToString()
              << "); retrying" << std::endl;
    Sleep(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  std::unique_ptr<kgr::AppClient> app = Connect(flags.socket);
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> noise(-2, 2);
  uint64_t seq = 0;
  while (flags.count == 0 || seq < flags.count) {
    double now = std::chrono::duration<double>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    std::string reading = nlohmann::json{
        {"seq", seq},
        {"t", Round(now, 3)},
        {"celsius", Round(20 + noise(rng),
                          2)}}.dump();
    kgr::Status sent = app->Send(
        flags.collector, kgr::Bytes(reading.begin(), reading.end()), 5000);
    if (sent.ok()) {
      ++seq;
      Sleep(flags.interval_s);
      continue;
    }
    std::cout << "sensor: reading " << seq << " not delivered ("
              << sent.ToString() << "); again" << std::endl;
    // The daemon's refusals leave the connection usable; a lost one is not.
    if (kgr::Status alive = app->GetStatus().status(); !alive.ok()) {
      std::cout << "sensor: daemon connection lost (" << alive.ToString() << ")"
                << std::endl;
      app = Connect(flags.socket);
    }
    Sleep(std::min(flags.interval_s, 0.5));
  }
  std::cout << "sensor: " << seq << " readings sent" << std::endl;
  return 0;
}
