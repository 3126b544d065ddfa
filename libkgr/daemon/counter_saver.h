// The frame counter file of a daemon (<state_dir>/counter, counter_file.h):
// read once at start as the floor of the counters it sends, written when
// the last counter sent changed (the daemons: every second and at exit), so
// that a restart never reuses a counter. Internal to libkgr/daemon/.
#ifndef KGR_DAEMON_COUNTER_SAVER_H_
#define KGR_DAEMON_COUNTER_SAVER_H_

#include <cstdint>
#include <string>

#include "kgr/filesystem.h"
#include "kgr/status.h"

namespace kgr {

class CounterSaver {
 public:
  // `who` prefixes the log line of a failed save ("ks", "node").
  CounterSaver(FileSystem& fs, std::string state_dir, std::string who);

  // The floor for the counters of this run: the saved counter plus
  // kCounterRestartMargin, 0 without a file, DATA_LOSS for a bad one.
  StatusOr<uint64_t> LoadFloor() const;
  // Saves `counter` unless it is the one saved last; a failure is logged
  // (as an error) and the save is tried again at the next call.
  void SaveIfChanged(uint64_t counter);
  // Saves `counter` now.
  Status Save(uint64_t counter);

  const std::string& path() const { return path_; }

 private:
  FileSystem& fs_;
  const std::string path_;
  const std::string who_;
  uint64_t saved_ = 0;  // the counter in the file (0: none saved by us)
};

}  // namespace kgr

#endif  // KGR_DAEMON_COUNTER_SAVER_H_
