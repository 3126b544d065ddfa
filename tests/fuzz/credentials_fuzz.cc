// Fuzzes the signed credential file and peer list parsers and the NV blob
// decoders. The corpus holds files signed by the test AC of
// libkgr/ac/testdata, so that mutations reach the field parser and the
// signature check.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kgr/credentials.h"
#include "kgr/own_data.h"

namespace {
// libkgr/ac/testdata/ca.pem: the CA of the corpus's peer lists.
constexpr std::string_view kCaPem = R"(-----BEGIN CERTIFICATE-----
MIIBsTCCAVigAwIBAgIUT2pE4TYfdUsjIlWzPaoH4F3nRBUwCgYIKoZIzj0EAwIw
JDEMMAoGA1UECgwDa2dyMRQwEgYDVQQDDAtrZ3IgdGVzdCBDQTAgFw0yNjEyMDUx
OTIyMDhaGA8yMTI2MTExMTE5MjIwOFowJDEMMAoGA1UECgwDa2dyMRQwEgYDVQQD
DAtrZ3IgdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABK8eq6RHSOli
wOVQN7FCzv8gAAsFT4EgUH2NxvUG9b4cZosw4GIOQdyLeZbRDanpQRBAL6Y1OdgL
K07VpOmVyGijZjBkMB0GA1UdDgQWBBQ98Hnqni8PFP0mk5MeCJT4Q6CjpjAfBgNV
HSMEGDAWgBQ98Hnqni8PFP0mk5MeCJT4Q6CjpjASBgNVHRMBAf8ECDAGAQH/AgEA
MA4GA1UdDwEB/wQEAwIBBjAKBggqhkjOPQQDAgNHADBEAiB5zP6byz1vqDo4kDA/
Fy1pgqSDYCnSDz1ky2A8yeaWzwIgQhm3rDlQRGza6rZ6NVfxmKymJf07rb2SdKsP
ymhYbC8=
-----END CERTIFICATE-----
)";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  (void)kgr::ParseCredentialFile(in);
  (void)kgr::ParsePeerList(in, kCaPem);
  (void)kgr::DecodeIdentity(in);
  (void)kgr::DecodeKsKeys(in);
  return 0;
}
