#include "kgr/counter_file.h"

#include <optional>
#include <string>

namespace kgr {
namespace {

// The saved counter, or nullopt if there is no file.
StatusOr<std::optional<uint64_t>> ReadCounter(FileSystem& fs,
                                              const std::string& path) {
  auto raw = fs.ReadFile(path);
  if (!raw.ok()) {
    if (raw.status().code() == StatusCode::kNotFound) {
      return std::optional<uint64_t>();
    }
    return raw.status();
  }
  uint64_t v = 0;
  size_t digits = 0;
  for (uint8_t c : *raw) {
    if (c == '\n') break;
    if (c < '0' || c > '9' || ++digits > 19) {
      return DataLossError(path + ": not a counter");
    }
    v = v * 10 + (c - '0');
  }
  if (digits == 0) return DataLossError(path + ": empty counter file");
  return std::optional<uint64_t>(v);
}

}  // namespace

StatusOr<uint64_t> LoadCounterFloor(FileSystem& fs, const std::string& path) {
  KGR_ASSIGN_OR_RETURN(std::optional<uint64_t> v, ReadCounter(fs, path));
  return v.has_value() ? *v + kCounterRestartMargin : 0;
}

StatusOr<uint64_t> LoadCounter(FileSystem& fs, const std::string& path) {
  KGR_ASSIGN_OR_RETURN(std::optional<uint64_t> v, ReadCounter(fs, path));
  return v.value_or(0);
}

Status SaveCounter(FileSystem& fs, const std::string& path, uint64_t counter) {
  std::string text = std::to_string(counter) + "\n";
  return fs.WriteFileAtomic(path, AsBytes(text), 0600);
}

}  // namespace kgr
