#include "kgr/filesystem.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "testing/fake_filesystem.h"

namespace kgr {
namespace {

using ::kgr::testing::FakeFileSystem;
using Op = FakeFileSystem::Op;

Bytes B(std::string_view s) { return Bytes(s.begin(), s.end()); }

class PosixFs : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kgr_fs_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  int Mode(const std::string& p) {
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) return -1;
    return static_cast<int>(st.st_mode & 0777);
  }
  FileSystem& fs_ = *DefaultFileSystem();
  std::string dir_;
};

TEST_F(PosixFs, WriteAppendReadRemove) {
  std::string p = dir_ + "/f";
  EXPECT_FALSE(fs_.Exists(p));
  EXPECT_EQ(fs_.ReadFile(p).status().code(), StatusCode::kNotFound);
  {
    auto f = fs_.NewWritableFile(p, 0600);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append(B("hello ")).ok());
    ASSERT_TRUE((*f)->Sync().ok());
    ASSERT_TRUE((*f)->Close().ok());
    EXPECT_FALSE((*f)->Append(B("x")).ok());  // closed
  }
  {
    auto f = fs_.NewAppendableFile(p, 0600);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append(B("world")).ok());
    ASSERT_TRUE((*f)->Sync().ok());
  }  // destructor closes
  EXPECT_EQ(*fs_.ReadFile(p), B("hello world"));
  EXPECT_EQ(Mode(p), 0600);
  // A large file crosses the read buffer.
  Bytes big(200000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7);
  ASSERT_TRUE(fs_.WriteFileAtomic(p, big, 0600).ok());
  EXPECT_EQ(*fs_.ReadFile(p), big);
  ASSERT_TRUE(fs_.Remove(p).ok());
  EXPECT_EQ(fs_.Remove(p).code(), StatusCode::kNotFound);
}

TEST_F(PosixFs, RandomWriteFileOverwritesAndGrows) {
  std::string p = dir_ + "/r";
  {
    auto f = fs_.NewRandomWriteFile(p, 0600);  // created
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->WriteAt(0, B("abcdef")).ok());
    ASSERT_TRUE((*f)->Sync().ok());
  }
  EXPECT_EQ(Mode(p), 0600);
  auto f = fs_.NewRandomWriteFile(p, 0600);  // content kept
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->WriteAt(2, B("XY")).ok());
  ASSERT_TRUE((*f)->WriteAt(8, B("Z")).ok());
  ASSERT_TRUE((*f)->Sync().ok());
  EXPECT_EQ(*fs_.ReadFile(p), (Bytes{'a', 'b', 'X', 'Y', 'e', 'f', 0, 0, 'Z'}));
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ((*f)->WriteAt(0, B("x")).code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(fs_.NewRandomWriteFile(dir_ + "/no/such/dir", 0600).ok());
}

TEST_F(PosixFs, TruncatingOpenForcesMode) {
  std::string p = dir_ + "/f";
  ASSERT_TRUE(fs_.WriteFileAtomic(p, B("a"), 0644).ok());
  ASSERT_EQ(::chmod(p.c_str(), 0666), 0);
  auto f = fs_.NewWritableFile(p, 0600);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(Mode(p), 0600);
}

TEST_F(PosixFs, WriteFileAtomicReplacesAndCleansUp) {
  std::string p = dir_ + "/atomic";
  ASSERT_TRUE(fs_.WriteFileAtomic(p, B("one"), 0600).ok());
  ASSERT_TRUE(fs_.WriteFileAtomic(p, B("two"), 0600).ok());
  EXPECT_EQ(*fs_.ReadFile(p), B("two"));
  EXPECT_FALSE(fs_.Exists(p + ".tmp"));
  EXPECT_EQ(Mode(p), 0600);
  // Failure (directory missing): nothing left behind.
  EXPECT_EQ(fs_.WriteFileAtomic(dir_ + "/no/such", B("x"), 0600).code(),
            StatusCode::kNotFound);
}

TEST_F(PosixFs, RenameReplacesAtomically) {
  std::string a = dir_ + "/a", b = dir_ + "/b";
  ASSERT_TRUE(fs_.WriteFileAtomic(a, B("new"), 0600).ok());
  ASSERT_TRUE(fs_.WriteFileAtomic(b, B("old"), 0600).ok());
  ASSERT_TRUE(fs_.Rename(a, b).ok());
  EXPECT_FALSE(fs_.Exists(a));
  EXPECT_EQ(*fs_.ReadFile(b), B("new"));
  ASSERT_TRUE(fs_.SyncDir(dir_).ok());
  EXPECT_EQ(fs_.Rename(a, b).code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs_.SyncDir(dir_ + "/missing").ok());
}

TEST_F(PosixFs, CreateDirMakesParentsWithMode) {
  std::string d = dir_ + "/x/y/z";
  ASSERT_TRUE(fs_.CreateDir(d, 0700).ok());
  EXPECT_TRUE(fs_.Exists(d));
  EXPECT_EQ(Mode(dir_ + "/x"), 0700);
  EXPECT_EQ(Mode(d), 0700);
  ASSERT_TRUE(fs_.CreateDir(d, 0700).ok());  // exists: fine
  ASSERT_TRUE(fs_.WriteFileAtomic(dir_ + "/file", B("f"), 0600).ok());
  EXPECT_FALSE(fs_.CreateDir(dir_ + "/file", 0700).ok());
  EXPECT_FALSE(fs_.CreateDir("", 0700).ok());
}

TEST(DirName, Cases) {
  EXPECT_EQ(DirName("a/b"), "a");
  EXPECT_EQ(DirName("a/b/c"), "a/b");
  EXPECT_EQ(DirName("b"), ".");
  EXPECT_EQ(DirName(""), ".");
  EXPECT_EQ(DirName("/b"), "/");
  EXPECT_EQ(DirName("/"), "/");
  EXPECT_EQ(DirName("a/b/"), "a");
  EXPECT_EQ(DirName("a//b"), "a");
  EXPECT_EQ(DirName("/x/y"), "/x");
}

// ---- the fake's model, which the store's crash tests rely on ----

TEST(FakeFs, UnsyncedDataIsLostOnCrash) {
  FakeFileSystem fs;
  ASSERT_TRUE(fs.WriteFileAtomic("d/f", B("durable"), 0600).ok());
  auto f = fs.NewAppendableFile("d/f", 0600);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append(B("+lost")).ok());
  EXPECT_EQ(*fs.ReadFile("d/f"), B("durable+lost"));
  fs.Crash();
  EXPECT_EQ(*fs.ReadFile("d/f"), B("durable"));
  EXPECT_EQ((*f)->Append(B("x")).code(), StatusCode::kUnavailable);
}

TEST(FakeFs, TornAppendKeepsAPrefix) {
  FakeFileSystem fs;
  ASSERT_TRUE(fs.WriteFileAtomic("f", B("ab"), 0600).ok());
  auto f = fs.NewAppendableFile("f", 0600);
  ASSERT_TRUE((*f)->Append(B("cdef")).ok());
  FakeFileSystem::CrashOptions o;
  o.keep_unsynced_bytes = 2;
  fs.Crash(o);
  EXPECT_EQ(*fs.ReadFile("f"), B("abcd"));
  f = fs.NewAppendableFile("f", 0600);
  ASSERT_TRUE((*f)->Append(B("xy")).ok());
  o.garble_kept = true;
  o.keep_unsynced_bytes = 1;
  fs.Crash(o);
  EXPECT_EQ(*fs.ReadFile("f"), (Bytes{'a', 'b', 'c', 'd', 'x' ^ 0x5a}));
}

TEST(FakeFs, UnsyncedOverwritesSurviveInWriteOrder) {
  FakeFileSystem fs;
  ASSERT_TRUE(fs.WriteFileAtomic("f", B("abcdef"), 0600).ok());
  auto f = fs.NewRandomWriteFile("f", 0600);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->WriteAt(1, B("XY")).ok());
  ASSERT_TRUE((*f)->WriteAt(7, B("Z")).ok());  // past the end: a hole of 0
  EXPECT_EQ(*fs.ReadFile("f"), (Bytes{'a', 'X', 'Y', 'd', 'e', 'f', 0, 'Z'}));
  FakeFileSystem::CrashOptions o;
  o.keep_unsynced_bytes = 1;  // the first byte written survives
  fs.Crash(o);
  EXPECT_EQ(*fs.ReadFile("f"), B("aXcdef"));
  f = fs.NewRandomWriteFile("f", 0600);
  ASSERT_TRUE((*f)->WriteAt(0, B("Q")).ok());
  ASSERT_TRUE((*f)->Sync().ok());
  fs.Crash();
  EXPECT_EQ(*fs.ReadFile("f"), B("QXcdef"));
}

TEST(FakeFs, RenameWithoutSyncDirIsUndone) {
  FakeFileSystem fs;
  ASSERT_TRUE(fs.WriteFileAtomic("d/f", B("old"), 0600).ok());
  auto f = fs.NewWritableFile("d/f.new", 0600);
  ASSERT_TRUE((*f)->Append(B("new")).ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE(fs.Rename("d/f.new", "d/f").ok());
  EXPECT_EQ(*fs.ReadFile("d/f"), B("new"));
  fs.Crash();
  EXPECT_EQ(*fs.ReadFile("d/f"), B("old"));
  EXPECT_FALSE(fs.Exists("d/f.new"));  // its creation was never synced either
  // With SyncDir the rename sticks; keep_dir_changes keeps it without.
  ASSERT_TRUE(fs.WriteFileAtomic("d/g", B("g"), 0600).ok());
  fs.Crash();
  EXPECT_EQ(*fs.ReadFile("d/g"), B("g"));
  ASSERT_TRUE(fs.Remove("d/g").ok());
  FakeFileSystem::CrashOptions keep;
  keep.keep_dir_changes = true;
  fs.Crash(keep);
  EXPECT_FALSE(fs.Exists("d/g"));
}

TEST(FakeFs, TruncationWithoutSyncIsUndone) {
  FakeFileSystem fs;
  ASSERT_TRUE(fs.WriteFileAtomic("f", B("old"), 0600).ok());
  auto f = fs.NewWritableFile("f", 0600);
  ASSERT_TRUE((*f)->Append(B("n")).ok());
  fs.Crash();
  EXPECT_EQ(*fs.ReadFile("f"), B("old"));
}

TEST(FakeFs, FaultInjection) {
  FakeFileSystem fs;
  fs.FailNth(Op::kSync, 2, InternalError("EIO"));
  auto f = fs.NewWritableFile("f", 0640);
  ASSERT_TRUE((*f)->Sync().ok());
  EXPECT_EQ((*f)->Sync().code(), StatusCode::kInternal);
  EXPECT_TRUE((*f)->Sync().ok());
  EXPECT_EQ(fs.FileMode("f"), 0640);
  fs.FailNth(Op::kRename, 1, InternalError("EIO"));
  EXPECT_FALSE(fs.WriteFileAtomic("g", B("x"), 0600).ok());
  EXPECT_FALSE(fs.Exists("g"));
  EXPECT_FALSE(fs.Exists("g.tmp"));  // removed on failure
  fs.FailAfterMutations(1);
  EXPECT_TRUE((*f)->Append(B("a")).ok());
  EXPECT_EQ((*f)->Append(B("b")).code(), StatusCode::kUnavailable);
  EXPECT_EQ(*fs.ReadFile("f"), B("a"));  // reads still work
  fs.ClearFaults();
  EXPECT_TRUE((*f)->Append(B("c")).ok());
}

TEST(FakeFs, DiskFullWritesWhatFits) {
  FakeFileSystem fs;
  fs.SetCapacity(5);
  auto f = fs.NewWritableFile("f", 0600);
  EXPECT_EQ((*f)->Append(B("1234567")).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(*fs.ReadFile("f"), B("12345"));
  EXPECT_EQ((*f)->Append(B("8")).code(), StatusCode::kResourceExhausted);
  fs.SetCapacity(std::nullopt);
  EXPECT_TRUE((*f)->Append(B("8")).ok());
}

}  // namespace
}  // namespace kgr
