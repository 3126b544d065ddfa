#include "daemon/counter_saver.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "kgr/counter_file.h"

namespace kgr {

CounterSaver::CounterSaver(FileSystem& fs, std::string state_dir,
                           std::string who)
    : fs_(fs), path_(std::move(state_dir) + "/counter"), who_(std::move(who)) {}

StatusOr<uint64_t> CounterSaver::LoadFloor() const {
  return LoadCounterFloor(fs_, path_);
}

void CounterSaver::SaveIfChanged(uint64_t counter) {
  if (counter == saved_) return;
  Status st = Save(counter);
  if (!st.ok()) {
    spdlog::error("{}: frame counter not saved: {}", who_, st.ToString());
  }
}

Status CounterSaver::Save(uint64_t counter) {
  KGR_RETURN_IF_ERROR(SaveCounter(fs_, path_, counter));
  saved_ = counter;
  return OkStatus();
}

}  // namespace kgr
