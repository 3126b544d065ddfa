// Counter persistence of the daemons (apart from the frame codec).
#ifndef KGR_COUNTER_FILE_H_
#define KGR_COUNTER_FILE_H_

#include <cstdint>
#include <string>

#include "kgr/filesystem.h"
#include "kgr/status.h"

namespace kgr {

// The last frame counter of a process, kept in a small file (text, mode
// 0600) by the daemons so that a restart never reuses a counter even if the
// clock stepped back. LoadCounterFloor returns the saved value plus
// kCounterRestartMargin (counters sent after the last save are below it),
// or 0 if there is no file; a malformed file is DATA_LOSS.
inline constexpr uint64_t kCounterRestartMargin = 60'000'000;  // 60 s in µs
StatusOr<uint64_t> LoadCounterFloor(FileSystem& fs, const std::string& path);
// The saved value itself (0 if there is no file), for a floor that is
// written before it is relied on (the KS's AC replay floor).
StatusOr<uint64_t> LoadCounter(FileSystem& fs, const std::string& path);
Status SaveCounter(FileSystem& fs, const std::string& path, uint64_t counter);

}  // namespace kgr

#endif  // KGR_COUNTER_FILE_H_
