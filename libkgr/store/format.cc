// The header fields the snapshot and the journal share (docs/storage.md).
#include "store/format.h"

#include <algorithm>

namespace kgr {

bool FileHeader::Known(const char* expected_magic) const {
  return std::equal(magic.begin(), magic.end(), expected_magic) &&
         version == kFormatVersion && reserved == 0;
}

FileHeader ReadFileHeader(ByteReader& r) {
  FileHeader h;
  r.View(4, &h.magic);
  r.U8(&h.version);
  r.U8(&h.type);
  r.U16(&h.reserved);
  r.U32(&h.owner);
  r.U64(&h.generation);
  return h;
}

void WriteFileHeader(ByteWriter& w, const char* magic, RecordType type,
                     uint32_t owner, uint64_t generation) {
  w.Str(std::string_view(magic, 4));
  w.U8(kFormatVersion);
  w.U8(static_cast<uint8_t>(type));
  w.U16(0);
  w.U32(owner);
  w.U64(generation);
}

Bytes JournalEntryContext(uint32_t owner, RecordType type,
                          uint64_t generation) {
  Bytes ctx;
  ByteWriter cw(&ctx);
  cw.Raw(Label(kJournalEntryContext));
  cw.U32(owner);
  cw.U8(static_cast<uint8_t>(type));
  cw.U64(generation);
  return ctx;
}

}  // namespace kgr
