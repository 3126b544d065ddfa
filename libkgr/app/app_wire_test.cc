#include "kgr/app_wire.h"

#include <gtest/gtest.h>

#include <string>

namespace kgr {
namespace {

std::string Frame(uint32_t n, const std::string& body) {
  std::string out;
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>(n >> s));
  return out + body;
}

TEST(AppWire, FrameRoundTripsInPieces) {
  nlohmann::json m = {{"op", "send"}, {"id", 7}};
  std::string wire = EncodeAppFrame(m) + EncodeAppFrame({{"op", "status"}});
  AppFrameReader r;
  for (char c : wire) {
    r.Append(&c, 1);
  }
  auto first = r.Next();
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ(**first, m);
  auto second = r.Next();
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ((**second)["op"], "status");
  auto none = r.Next();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(AppWire, IncompleteFrameWaits) {
  std::string wire = EncodeAppFrame({{"op", "status"}});
  AppFrameReader r;
  r.Append(wire.data(), wire.size() - 1);
  auto next = r.Next();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
}

TEST(AppWire, BadFramesAreRefusedWithTheirReason) {
  struct Case {
    std::string wire;
    std::string error;
  } cases[] = {
      {Frame(0, ""), "frame length 0 outside"},
      {Frame(kAppMaxFrame + 1, "{}"), "frame length 131073 outside"},
      {Frame(0xffffffff, "{}"), "frame length 4294967295 outside"},
      {Frame(3, "{x}"), "frame is not JSON"},
      {Frame(2, "[]"), "frame is not a JSON object"},
      {Frame(1, "7"), "frame is not a JSON object"},
      {Frame(4, "\xff\xfe{}"), "frame is not JSON"},
  };
  for (const Case& c : cases) {
    AppFrameReader r;
    r.Append(c.wire.data(), c.wire.size());
    auto next = r.Next();
    ASSERT_FALSE(next.ok()) << c.error;
    EXPECT_EQ(next.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(next.status().message().find(c.error), std::string::npos)
        << next.status().message();
  }
}

TEST(AppWire, Base64RoundTripsEveryLength) {
  for (size_t n = 0; n < 40; ++n) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 37 + 250);
    std::string text = Base64Encode(b);
    auto back = Base64Decode(text);
    ASSERT_TRUE(back.ok()) << text;
    EXPECT_EQ(*back, b);
  }
  EXPECT_EQ(Base64Encode(Bytes{'f', 'o', 'o', 'b'}), "Zm9vYg==");
}

TEST(AppWire, BadBase64IsRefused) {
  for (const char* bad :
       {"Zm9vYg=", "Zm9v!g==", "Zg=a", "=Zm9", "Zm9vY===", "Z===", "Zm 9"}) {
    auto r = Base64Decode(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(AppWire, FieldsNameWhatIsWrong) {
  nlohmann::json m = {
      {"peer", "0000000g"}, {"n", -1}, {"data", "?a?="}, {"s", 5}};
  EXPECT_EQ(AppPeerField(m, "peer").status().message(),
            "field 'peer' is not an N_ID (8 hex digits)");
  EXPECT_EQ(AppPeerField({{"peer", "1234567"}}, "peer").status().message(),
            "field 'peer' is not an N_ID (8 hex digits)");
  EXPECT_EQ(*AppPeerField({{"peer", "0000a0Ff"}}, "peer"), 0xa0ffu);
  EXPECT_FALSE(AppUintField(m, "n", std::nullopt).ok());
  EXPECT_EQ(*AppUintField(m, "absent", 9), 9u);
  EXPECT_FALSE(AppUintField(m, "absent", std::nullopt).ok());
  EXPECT_NE(AppDataField(m, "data").status().message().find("field 'data'"),
            std::string::npos);
  EXPECT_EQ(AppStringField(m, "s").status().message(),
            "field 's' missing or not a string");
  Bytes big(kAppMaxData + 1, 'x');
  nlohmann::json too_big = {{"data", Base64Encode(big)}};
  EXPECT_NE(AppDataField(too_big, "data").status().message().find("longer"),
            std::string::npos);
  Bytes max(kAppMaxData, 'y');
  EXPECT_TRUE(AppDataField({{"data", Base64Encode(max)}}, "data").ok());
  // The largest message fits a frame with room for the other fields.
  EXPECT_LT(EncodeAppFrame({{"data", Base64Encode(max)}}).size(), kAppMaxFrame);
}

TEST(AppWire, EnvelopeRoundTripsAndRawDataIsNotOne) {
  Bytes data = {1, 2, 3};
  auto e = UnwrapApp(WrapAppMessage(AppKind::kRequest, data));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, static_cast<uint8_t>(AppKind::kRequest));
  EXPECT_EQ(e->data, data);
  auto a = UnwrapApp(WrapAppAnswer(AppAnswer::kBusy, {}));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->code, static_cast<uint8_t>(AppAnswer::kBusy));
  EXPECT_TRUE(a->data.empty());
  EXPECT_FALSE(UnwrapApp(Bytes{'k', 'g', 'A'}).has_value());
  EXPECT_FALSE(UnwrapApp(Bytes{'h', 'e', 'l', 'l', 'o'}).has_value());
}

}  // namespace
}  // namespace kgr
