#include "daemon/counter_saver.h"

#include <gtest/gtest.h>

#include <string>

#include "kgr/counter_file.h"
#include "testing/fake_filesystem.h"

namespace kgr {
namespace {

using testing::FakeFileSystem;

std::string Contents(FakeFileSystem& fs, const std::string& path) {
  auto raw = fs.ReadFile(path);
  return raw.ok() ? std::string(raw->begin(), raw->end()) : "<none>";
}

TEST(CounterSaverTest, NoFileIsFloorZero) {
  FakeFileSystem fs;
  CounterSaver saver(fs, "/state", "ks");
  EXPECT_EQ(saver.path(), "/state/counter");
  auto floor = saver.LoadFloor();
  ASSERT_TRUE(floor.ok()) << floor.status().ToString();
  EXPECT_EQ(*floor, 0u);
}

TEST(CounterSaverTest, SavedCounterPlusMarginIsTheNextFloor) {
  FakeFileSystem fs;
  CounterSaver saver(fs, "/state", "node");
  ASSERT_TRUE(saver.Save(123456).ok());
  EXPECT_EQ(Contents(fs, "/state/counter"), "123456\n");
  EXPECT_EQ(fs.FileMode("/state/counter"), 0600);
  // The next run (a new saver on the same directory).
  CounterSaver next(fs, "/state", "node");
  auto floor = next.LoadFloor();
  ASSERT_TRUE(floor.ok()) << floor.status().ToString();
  EXPECT_EQ(*floor, 123456 + kCounterRestartMargin);
}

TEST(CounterSaverTest, SavesOnlyWhenTheCounterChanged) {
  FakeFileSystem fs;
  CounterSaver saver(fs, "/state", "ks");
  saver.SaveIfChanged(7);
  const int renames = fs.Count(FakeFileSystem::Op::kRename);
  EXPECT_GE(renames, 1);
  saver.SaveIfChanged(7);
  saver.SaveIfChanged(7);
  EXPECT_EQ(fs.Count(FakeFileSystem::Op::kRename), renames);
  saver.SaveIfChanged(8);
  EXPECT_GT(fs.Count(FakeFileSystem::Op::kRename), renames);
  EXPECT_EQ(Contents(fs, "/state/counter"), "8\n");
}

TEST(CounterSaverTest, NothingSavedYetMeansCounterZeroIsNotWritten) {
  FakeFileSystem fs;
  CounterSaver saver(fs, "/state", "node");
  saver.SaveIfChanged(0);  // a daemon that sent nothing
  EXPECT_FALSE(fs.Exists("/state/counter"));
}

TEST(CounterSaverTest, AFailedSaveIsTriedAgainAtTheNextCall) {
  FakeFileSystem fs;
  CounterSaver saver(fs, "/state", "ks");
  ASSERT_TRUE(saver.Save(5).ok());
  fs.FailNth(FakeFileSystem::Op::kOpen, 1, UnavailableError("disk gone"));
  saver.SaveIfChanged(9);  // fails (logged)
  EXPECT_EQ(Contents(fs, "/state/counter"), "5\n");
  saver.SaveIfChanged(9);  // the same counter: written now
  EXPECT_EQ(Contents(fs, "/state/counter"), "9\n");
}

TEST(CounterSaverTest, ExplicitSaveReportsTheFailure) {
  FakeFileSystem fs;
  CounterSaver saver(fs, "/state", "ks");
  fs.FailNth(FakeFileSystem::Op::kOpen, 1, UnavailableError("disk gone"));
  Status st = saver.Save(3);
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_FALSE(fs.Exists("/state/counter"));
}

TEST(CounterSaverTest, MalformedFileIsDataLoss) {
  FakeFileSystem fs;
  fs.SetContents("/state/counter", Bytes{'1', '2', 'x', '\n'});
  CounterSaver saver(fs, "/state", "ks");
  EXPECT_EQ(saver.LoadFloor().status().code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace kgr

namespace kgr {
namespace {

TEST(CounterFileTest, LoadCounterIsTheSavedValueWithoutMargin) {
  FakeFileSystem fs;
  auto none = LoadCounter(fs, "/state/ac_counter");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0u);
  ASSERT_TRUE(SaveCounter(fs, "/state/ac_counter", 987654321).ok());
  auto v = LoadCounter(fs, "/state/ac_counter");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 987654321u);
  fs.SetContents("/state/ac_counter", Bytes{'x', '\n'});
  EXPECT_EQ(LoadCounter(fs, "/state/ac_counter").status().code(),
            StatusCode::kDataLoss);
}

}  // namespace
}  // namespace kgr
