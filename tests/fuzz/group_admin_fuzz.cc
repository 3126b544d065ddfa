// Fuzzes the KS side's group decoders (docs/protocol.md section 14): the
// bodies of group_join/group_sync_ans, group_sync_req and the AC's
// ac_group_* requests and answers, and the group records' parts
// (docs/storage.md 1.6: header, key tree pieces, member pieces). Must never
// crash, leak, read out of bounds or allocate without bound; whatever
// parses encodes back to the same bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "kgr/group_frames.h"
#include "kgr/records.h"

namespace {

template <typename Body>
void RoundTrip(std::span<const uint8_t> in) {
  auto body = Body::Parse(in);
  if (!body.ok()) return;
  kgr::Bytes out;
  body->EncodeTo(&out);
  if (out.size() != in.size() ||
      !std::equal(out.begin(), out.end(), in.begin())) {
    std::abort();  // a body that parses must encode to the same bytes
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  RoundTrip<kgr::GroupJoin>(in);
  RoundTrip<kgr::GroupSyncAns>(in);
  RoundTrip<kgr::GroupSyncReq>(in);
  RoundTrip<kgr::AcGroupCreateReq>(in);
  RoundTrip<kgr::AcGroupMembersReq>(in);
  RoundTrip<kgr::AcGroupDeleteReq>(in);
  RoundTrip<kgr::AcGroupListReq>(in);
  RoundTrip<kgr::AcGroupListAns>(in);
  RoundTrip<kgr::AcGroupCreateAns>(in);
  // The record's parts: the first byte splits clear from secret.
  if (size > 0) {
    const size_t split = std::min<size_t>(data[0], size - 1);
    // Every kind of record (header, tree piece, member piece), the level
    // and piece taken from the input too.
    using Kind = kgr::GroupDesc::Kind;
    const uint8_t level = size > 1 ? data[1] & 0x1F : 0;
    for (uint64_t key :
         {kgr::GroupRecordKey(Kind::kHeader, 0x01020304),
          kgr::GroupRecordKey(Kind::kTreePiece, 0x01020304, level, 3),
          kgr::GroupRecordKey(Kind::kMemberPiece, 0x01020304, 0, 7)}) {
      kgr::GroupDesc g;
      (void)kgr::DecodeGroupParts(key, in.subspan(1, split),
                                  in.subspan(1 + split), &g);
    }
  }
  return 0;
}
