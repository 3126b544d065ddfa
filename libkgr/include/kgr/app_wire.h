// The node-local application API's wire format (docs/api.md): frames of a
// 4-byte big-endian length and that many bytes of one JSON object, bytes in
// JSON as base64 (RFC 4648, with padding). Shared by the daemon's server
// (libkgr/daemon/app_server.cc) and the C++ client (kgr/app_client.h).
//
// And the envelope inside a protected data frame between two daemons: "kgA"
// then one byte, the kind of a message (one-way, request) or the status of
// an answer, then the application's bytes.
#ifndef KGR_APP_WIRE_H_
#define KGR_APP_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "kgr/bytes.h"
#include "kgr/frame.h"
#include "kgr/status.h"

namespace kgr {

inline constexpr int kAppApiVersion = 1;
// The largest frame (length field excluded) either side accepts.
inline constexpr size_t kAppMaxFrame = 128 * 1024;
inline constexpr size_t kAppEnvelopeSize = 4;
// The largest message an application can send or answer with.
inline constexpr size_t kAppMaxData = kMaxDataSize - kAppEnvelopeSize;

// One frame: the length, then the JSON text (dump()).
std::string EncodeAppFrame(const nlohmann::json& message);

// Takes frames out of a byte stream read in pieces.
class AppFrameReader {
 public:
  void Append(const char* data, size_t n) { buffer_.append(data, n); }
  // The next complete frame's object; nullopt if more bytes are needed.
  // INVALID_ARGUMENT (the stream cannot continue) for a length of 0 or over
  // kAppMaxFrame, text that is not JSON, or JSON that is not an object.
  StatusOr<std::optional<nlohmann::json>> Next();
  size_t buffered() const { return buffer_.size(); }

 private:
  std::string buffer_;
};

std::string Base64Encode(const Bytes& bytes);
// INVALID_ARGUMENT for a character outside the alphabet, bad padding or a
// length that is not a multiple of 4.
StatusOr<Bytes> Base64Decode(std::string_view text);

// Fields of a request, checked: each error names the field.
StatusOr<std::string> AppStringField(const nlohmann::json& m,
                                     std::string_view name);
// A non-negative integer; `fallback` when absent (nullopt: required).
StatusOr<uint64_t> AppUintField(const nlohmann::json& m, std::string_view name,
                                std::optional<uint64_t> fallback);
// Base64 bytes of at most kAppMaxData.
StatusOr<Bytes> AppDataField(const nlohmann::json& m, std::string_view name);
// An N_ID as 8 hex digits.
StatusOr<uint32_t> AppPeerField(const nlohmann::json& m, std::string_view name);

// The envelope between two daemons.
enum class AppKind : uint8_t { kOneWay = 1, kRequest = 2 };
enum class AppAnswer : uint8_t {
  kDelivered = 0,   // one-way: queued for >= 1 application
  kAnswered = 1,    // request: an application's answer follows
  kNoReceiver = 2,  // no application there takes messages from us
  kBusy = 3,        // every such application's queue was full
};
Bytes WrapAppMessage(AppKind kind, const Bytes& data);
Bytes WrapAppAnswer(AppAnswer status, const Bytes& data);
struct AppEnvelope {
  uint8_t code = 0;  // an AppKind or an AppAnswer
  Bytes data;
};
// nullopt if `frame_data` does not start with the envelope's magic (data
// from `kgr-node send`, which sends raw bytes).
std::optional<AppEnvelope> UnwrapApp(const Bytes& frame_data);

}  // namespace kgr

#endif  // KGR_APP_WIRE_H_
