#include "daemon/journal_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace kgr {
namespace {

using Fields = std::vector<std::string>;

TEST(JournalLogTest, FieldsCarryPriorityRoleAndNode) {
  EXPECT_EQ(
      JournalFields(spdlog::level::warn, "queue full", "kgr-ks", "ks",
                    "1a2b3c4d"),
      (Fields{"MESSAGE=queue full", "PRIORITY=4", "SYSLOG_IDENTIFIER=kgr-ks",
              "KGR_ROLE=ks", "KGR_NODE=1a2b3c4d"}));
  EXPECT_EQ(JournalFields(spdlog::level::err, "x", "kgr-node", "node", ""),
            (Fields{"MESSAGE=x", "PRIORITY=3", "SYSLOG_IDENTIFIER=kgr-node",
                    "KGR_ROLE=node"}));
  EXPECT_EQ(JournalFields(spdlog::level::info, "", "p", "r", "")[1],
            "PRIORITY=6");
  EXPECT_EQ(JournalFields(spdlog::level::debug, "", "p", "r", "")[1],
            "PRIORITY=7");
}

TEST(JournalLogTest, StderrIsTheJournalOnlyWhenJournalStreamNamesIt) {
  struct stat st;
  ASSERT_EQ(fstat(STDERR_FILENO, &st), 0);
  const std::string mine =
      std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(StderrIsJournal());
  setenv("JOURNAL_STREAM", mine.c_str(), 1);
  EXPECT_TRUE(StderrIsJournal());
  // Another file (stderr redirected by a child's caller): not the journal.
  const std::string other =
      std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  setenv("JOURNAL_STREAM", other.c_str(), 1);
  EXPECT_FALSE(StderrIsJournal());
  setenv("JOURNAL_STREAM", "garbage", 1);
  EXPECT_FALSE(StderrIsJournal());
  unsetenv("JOURNAL_STREAM");
}

}  // namespace
}  // namespace kgr
