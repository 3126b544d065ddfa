// Status and StatusOr<T>: libkgr's error values. No libkgr API throws.
//
// A Status is either OK or a code plus a message for the operator. Messages
// never contain secret material. Verification failures of MACs always carry
// the one generic message "verification failed" (see crypto.h).
#ifndef KGR_STATUS_H_
#define KGR_STATUS_H_

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace kgr {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // malformed input: bad length, unknown type/version
  kUnauthenticated,     // a MAC or signature did not verify
  kNotFound,            // a record, file or NV index does not exist
  kAlreadyExists,       // would create something that exists
  kFailedPrecondition,  // state does not allow the operation (not registered)
  kPermissionDenied,    // policy refuses (pair not allowed, NTAG used)
  kDataLoss,            // stored data is corrupt (record MAC failed, torn)
  kUnavailable,         // a peer or device is unreachable; retrying may help
  kDeadlineExceeded,    // a deadline passed before an answer came
  kResourceExhausted,   // a bound was hit (queue, rate, NV space)
  kAborted,             // replay or duplicate; dropped by protocol rule
  kInternal,            // a library (OpenSSL, tss2, Paho) failed unexpectedly
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "CODE: message", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context: `.
  Status Annotate(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgumentError(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status UnauthenticatedError(std::string m) {
  return Status(StatusCode::kUnauthenticated, std::move(m));
}
inline Status NotFoundError(std::string m) {
  return Status(StatusCode::kNotFound, std::move(m));
}
inline Status AlreadyExistsError(std::string m) {
  return Status(StatusCode::kAlreadyExists, std::move(m));
}
inline Status FailedPreconditionError(std::string m) {
  return Status(StatusCode::kFailedPrecondition, std::move(m));
}
inline Status PermissionDeniedError(std::string m) {
  return Status(StatusCode::kPermissionDenied, std::move(m));
}
inline Status DataLossError(std::string m) {
  return Status(StatusCode::kDataLoss, std::move(m));
}
inline Status UnavailableError(std::string m) {
  return Status(StatusCode::kUnavailable, std::move(m));
}
inline Status DeadlineExceededError(std::string m) {
  return Status(StatusCode::kDeadlineExceeded, std::move(m));
}
inline Status ResourceExhaustedError(std::string m) {
  return Status(StatusCode::kResourceExhausted, std::move(m));
}
inline Status AbortedError(std::string m) {
  return Status(StatusCode::kAborted, std::move(m));
}
inline Status InternalError(std::string m) {
  return Status(StatusCode::kInternal, std::move(m));
}

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT
    assert(!status_.ok() && "StatusOr built from an OK Status");
    if (status_.ok()) status_ = InternalError("StatusOr built from OK status");
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  // Precondition: ok().
  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace kgr

#define KGR_CONCAT_INNER_(a, b) a##b
#define KGR_CONCAT_(a, b) KGR_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (a Status) is not OK.
#define KGR_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::kgr::Status kgr_status_ = (expr);        \
    if (!kgr_status_.ok()) return kgr_status_; \
  } while (0)

// `lhs = value of expr` or return its Status. `expr` yields a StatusOr<T>.
#define KGR_ASSIGN_OR_RETURN(lhs, expr) \
  KGR_ASSIGN_OR_RETURN_IMPL_(KGR_CONCAT_(kgr_statusor_, __LINE__), lhs, expr)
#define KGR_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#endif  // KGR_STATUS_H_
