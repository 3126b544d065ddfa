#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "kgr/control.h"

namespace kgr {
namespace {

namespace fs = std::filesystem;

class DirLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kgr-dirlock-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string root_;
};

TEST_F(DirLockTest, AFailedCommandLeavesNoStateDirectoryBehind) {
  const std::string dir = root_ + "/state";
  {
    auto lock = DirLock::ForStateDir(dir);
    ASSERT_TRUE(lock.ok()) << lock.status().message();
    EXPECT_TRUE(fs::exists(dir + "/lock"));
  }  // the command failed: it wrote nothing
  EXPECT_FALSE(fs::exists(dir));
}

TEST_F(DirLockTest, WhatACommandWroteStaysWithItsLock) {
  const std::string dir = root_ + "/state";
  {
    auto lock = DirLock::ForStateDir(dir);
    ASSERT_TRUE(lock.ok()) << lock.status().message();
    std::ofstream(dir + "/node_desc") << "x";
  }
  EXPECT_TRUE(fs::exists(dir + "/node_desc"));
  EXPECT_TRUE(fs::exists(dir + "/lock"));
}

TEST_F(DirLockTest, AnExistingDirectoryIsNeverRemoved) {
  const std::string dir = root_ + "/state";
  fs::create_directory(dir);
  { ASSERT_TRUE(DirLock::ForStateDir(dir).ok()); }
  EXPECT_TRUE(fs::exists(dir));
}

TEST_F(DirLockTest, ASecondHolderIsRefusedAndRemovesNothing) {
  const std::string dir = root_ + "/state";
  auto first = DirLock::ForStateDir(dir);
  ASSERT_TRUE(first.ok()) << first.status().message();
  auto second = DirLock::ForStateDir(dir);
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(fs::exists(dir + "/lock"));
}

}  // namespace
}  // namespace kgr
