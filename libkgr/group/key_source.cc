#include "group/key_source.h"

#include <algorithm>

#include "kgr/bytes.h"

namespace kgr::group {
namespace {

class SystemSource : public KeySource {
 public:
  Status Fill(std::span<uint8_t> out) override { return RandomBytes(out); }
};

}  // namespace

KeySource& SystemKeySource() {
  static SystemSource* source = new SystemSource;
  return *source;
}

SeededKeySource::SeededKeySource(uint64_t seed) : seed_(seed) {}

Status SeededKeySource::Fill(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    Bytes input;
    ByteWriter w(&input);
    w.Str("kgr/v1 group seeded");
    w.U64(seed_);
    w.U64(block_++);
    Digest d = Sha256({input});
    size_t n = std::min(d.size(), out.size() - done);
    std::copy_n(d.begin(), n, out.begin() + done);
    done += n;
  }
  return OkStatus();
}

}  // namespace kgr::group
