// The strict, table-driven flag and config layer (ParseCommandLine, cli.h)
// and StagedFile.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kgr/cli.h"
#include "testing/fake_filesystem.h"

namespace kgr {
namespace {

Status NoX(std::string_view t) {
  return t.find('x') == std::string_view::npos
             ? OkStatus()
             : InvalidArgumentError("no x allowed");
}

constexpr SettingSpec kSpecs[] = {
    {.flag = "timeout-ms",
     .key = "timeout_ms",
     .kind = SettingKind::kInteger,
     .fallback = "10000",
     .min = 1,
     .max = 3'600'000},
    {.flag = "level",
     .key = "log_level",
     .kind = SettingKind::kChoice,
     .fallback = "info",
     .choices = "debug|info|warn|error"},
    {.flag = "pcr", .key = "pcr_policy", .kind = SettingKind::kBool},
    {.flag = "ca", .key = "tls.ca_file"},
    {.flag = "broker", .key = "broker", .kind = SettingKind::kHostPort},
    {.flag = "name", .key = "name", .max = 8, .check = NoX},
    {.flag = "node", .key = {}, .kind = SettingKind::kNodeId},
    {.flag = "peers", .key = {}, .kind = SettingKind::kNodeIdList},
    {.flag = {}, .key = "policy.pairs", .kind = SettingKind::kObject},
};

class SettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kgr-settings-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Parses `args` (after the program name), with `config` as --config if
  // it is not empty.
  StatusOr<CommandLine> Parse(std::vector<std::string> args,
                              const std::string& config = "") {
    if (!config.empty()) {
      std::string path = (dir_ / "config.json").string();
      std::ofstream(path) << config;
      args.push_back("--config");
      args.push_back(path);
    }
    std::vector<char*> argv{const_cast<char*>("prog")};
    for (auto& a : args) argv.push_back(a.data());
    return ParseCommandLine(static_cast<int>(argv.size()), argv.data(), kSpecs);
  }
  // The one-line error of a refused invocation.
  std::string Error(std::vector<std::string> args,
                    const std::string& config = "") {
    auto r = Parse(std::move(args), config);
    EXPECT_FALSE(r.ok());
    if (r.ok()) return "";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
    return r.status().message();
  }
  std::filesystem::path dir_;
};

TEST_F(SettingsTest, FlagThenConfigThenFallback) {
  auto c = Parse({"run", "--timeout-ms", "5"},
                 R"({"timeout_ms": 7, "log_level": "warn",
                     "tls": {"ca_file": "/ca.pem"}, "pcr_policy": true})");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->command, "run");
  EXPECT_EQ(c->Int("timeout_ms"), 5u);
  EXPECT_EQ(c->Str("log_level"), "warn");
  EXPECT_EQ(c->Str("tls.ca_file"), "/ca.pem");
  EXPECT_TRUE(c->Bool("pcr_policy"));
  EXPECT_FALSE(c->Has("broker"));
  auto d = Parse(
      {"run", "--pcr", "--node=0a0b0c0d", "--peers", "00000001,00000002"});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->Int("timeout_ms"), 10000u);
  EXPECT_TRUE(d->Has("timeout_ms"));
  EXPECT_FALSE(d->Given("timeout_ms"));
  EXPECT_EQ(d->Str("log_level"), "info");
  EXPECT_TRUE(d->Bool("pcr_policy"));
  EXPECT_EQ(d->Id("node"), 0x0a0b0c0du);
  EXPECT_EQ(d->Ids("peers"), (std::vector<uint32_t>{1, 2}));
}

TEST_F(SettingsTest, BadConfigValuesNameTheKeyAndWhatIsAllowed) {
  const std::string range = "must be an integer from 1 to 3600000";
  for (const char* v : {"1e30", "18446744073709551616", "2.5", "-1", "0",
                        "3600001", "\"100\"", "true", "null", "[]", "{}"}) {
    std::string e = Error({"run"}, std::string("{\"timeout_ms\": ") + v + "}");
    EXPECT_EQ(e.rfind("config key \"timeout_ms\": " + range + " (got ", 0), 0u)
        << e;
  }
  EXPECT_NE(Error({"run"}, R"({"log_level": "verbose"})")
                .find("must be one of debug, info, warn, error"),
            std::string::npos);
  EXPECT_NE(Error({"run"}, R"({"log_level": 3})").find("\"log_level\""),
            std::string::npos);
  for (const char* v : {"\"true\"", "1", "0", "null"}) {
    EXPECT_NE(Error({"run"}, std::string("{\"pcr_policy\": ") + v + "}")
                  .find("\"pcr_policy\": must be true or false"),
              std::string::npos);
  }
  EXPECT_NE(
      Error({"run"}, R"({"tls": "x"})").find("\"tls\": must be an object"),
      std::string::npos);
  EXPECT_NE(Error({"run"}, R"({"tls": {"cafile": "x"}})")
                .find("\"tls.cafile\": unknown key (known here: ca_file)"),
            std::string::npos);
  EXPECT_NE(
      Error({"run"}, R"({"timeout": 1})").find("\"timeout\": unknown key"),
      std::string::npos);
  EXPECT_NE(Error({"run"}, R"({"name": "axb"})").find("no x allowed"),
            std::string::npos);
  EXPECT_NE(
      Error({"run"}, R"({"policy": {"pairs": 3}})").find("must be an object"),
      std::string::npos);
  EXPECT_NE(Error({"run"}, "[1]").find("not a JSON object"), std::string::npos);
}

TEST_F(SettingsTest, LongValuesAreShownShortened) {
  std::string big(1 << 20, 'a');
  std::string e = Error({"run"}, "{\"broker\": \"" + big + ":1\"}");
  EXPECT_NE(e.find("\"broker\": must be host:port"), std::string::npos);
  EXPECT_LT(e.size(), 200u) << e;
  EXPECT_NE(e.find("(1048578 characters)"), std::string::npos) << e;
  EXPECT_NE(Error({"run", "--name", "abcdefghi"}).find("1 to 8 characters"),
            std::string::npos);
  EXPECT_NE(Error({"run", "--name", "a\nb"}).find("--name"), std::string::npos);
}

TEST_F(SettingsTest, BadFlagValuesNameTheFlag) {
  for (const char* v : {"10x", "1e3", "-1", "0", "2.5", "", " 5", "+5",
                        "99999999999999999999999", "18446744073709551616"}) {
    std::string e = Error({"run", "--timeout-ms", v});
    EXPECT_EQ(e.rfind("flag --timeout-ms: must be an integer from 1 to "
                      "3600000 (got '",
                      0),
              0u)
        << e;
  }
  for (const char* v : {"localhost", "127.0.0.1:0", "127.0.0.1:65536",
                        "127.0.0.1:88x", ":8883", "a b:1", "h:+80"}) {
    EXPECT_NE(
        Error({"run", "--broker", v}).find("flag --broker: must be host:port"),
        std::string::npos)
        << v;
  }
  for (const char* v : {"123", "0000000g", "00000000"}) {
    EXPECT_NE(Error({"run", "--node", v}).find("flag --node: must be an N_ID"),
              std::string::npos);
  }
  for (const char* v : {"", "00000001,", "00000001,,00000002", "1,2"}) {
    EXPECT_NE(Error({"run", "--peers", v}).find("flag --peers"),
              std::string::npos);
  }
}

TEST_F(SettingsTest, FlagSyntaxErrors) {
  EXPECT_NE(Error({"run", "--nope", "1"}).find("unknown flag --nope"),
            std::string::npos);
  EXPECT_NE(Error({"run", "--timeout-ms", "5", "--timeout-ms=6"})
                .find("--timeout-ms: given twice"),
            std::string::npos);
  EXPECT_NE(Error({"run", "--pcr=yes"}).find("--pcr: takes no value"),
            std::string::npos);
  EXPECT_NE(Error({"run", "--timeout-ms"}).find("needs a value"),
            std::string::npos);
  EXPECT_NE(Error({"run", "extra"}).find("unexpected argument"),
            std::string::npos);
  EXPECT_NE(Error({"run", "--config", (dir_ / "none.json").string()})
                .find("config file"),
            std::string::npos);
  // --help needs nothing else to be valid.
  auto h = Parse({"--help", "--config", "/nonexistent"});
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(h->Given("help"));
}

TEST_F(SettingsTest, InvalidNamesTheOrigin) {
  auto c = Parse({"run", "--timeout-ms", "5"}, R"({"broker": "h:1"})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->Invalid("timeout_ms", "too short").message(),
            "flag --timeout-ms: too short");
  EXPECT_EQ(c->Invalid("broker", "no").message(), "config key \"broker\": no");
  EXPECT_EQ(ConfigInteger(nlohmann::json(2.5), "a.b", 0, 9).status().message(),
            "config key \"a.b\": must be an integer from 0 to 9 (got 2.5)");
  EXPECT_EQ(*ConfigInteger(nlohmann::json(9), "a.b", 0, 9), 9u);
}

TEST(StagedFileTest, CommitReplacesTheFileAndAnAbandonedOneLeavesNothing) {
  testing::FakeFileSystem fs;
  {
    auto f = StagedFile::Stage(fs, "/out", 0600, 100);
    ASSERT_TRUE(f.ok());
    EXPECT_TRUE(fs.Exists("/out.tmp"));
    EXPECT_FALSE(fs.Exists("/out"));
  }
  EXPECT_FALSE(fs.Exists("/out.tmp"));
  EXPECT_FALSE(fs.Exists("/out"));
  auto f = StagedFile::Stage(fs, "/out", 0600, 100);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Commit(AsBytes("data")).ok());
  f->reset();
  EXPECT_EQ(*fs.ReadFile("/out"),
            Bytes(AsBytes("data").begin(), AsBytes("data").end()));
  EXPECT_EQ(fs.FileMode("/out"), 0600);
  EXPECT_FALSE(fs.Exists("/out.tmp"));
}

TEST(StagedFileTest, AFullDiskOrADirectoryShowsAtStage) {
  testing::FakeFileSystem fs;
  fs.SetCapacity(50);
  auto full = StagedFile::Stage(fs, "/out", 0600, 100);
  ASSERT_FALSE(full.ok());
  EXPECT_FALSE(fs.Exists("/out.tmp"));
  auto dir =
      StagedFile::Stage(fs, std::filesystem::temp_directory_path(), 0600, 1);
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("is a directory"), std::string::npos);
}

}  // namespace
}  // namespace kgr
