// Fuzzes the credential file and peer list parsers and the NV blob decoders.
#include <cstddef>
#include <cstdint>

#include "kgr/credentials.h"
#include "kgr/own_data.h"
#include "testing/fake_filesystem.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  kgr::testing::FakeFileSystem fs;
  fs.SetContents("/c", kgr::Bytes(in.begin(), in.end()));
  (void)kgr::ReadCredentialFile(fs, "/c");
  (void)kgr::ReadPeerList(fs, "/c");
  (void)kgr::DecodeIdentity(in);
  (void)kgr::DecodeKsKeys(in);
  return 0;
}
