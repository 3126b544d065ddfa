// Logging to the systemd journal with structured fields. Internal to
// libkgr/daemon/ (SetupDaemonLogging in kgr/daemon.h picks it).
#ifndef KGR_DAEMON_JOURNAL_LOG_H_
#define KGR_DAEMON_JOURNAL_LOG_H_

#include <spdlog/common.h>
#include <spdlog/sinks/sink.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kgr {

// True when stderr is the journal's stream: JOURNAL_STREAM ("DEV:INODE",
// set by systemd for StandardError=journal) names stderr's device and
// inode (a child whose stderr was redirected elsewhere logs there).
bool StderrIsJournal();

// The fields of one journal entry: MESSAGE, PRIORITY (syslog level),
// SYSLOG_IDENTIFIER=<program>, KGR_ROLE=<role>, and KGR_NODE=<N_ID> once
// the daemon knows it (empty: left out).
std::vector<std::string> JournalFields(spdlog::level::level_enum level,
                                       std::string_view message,
                                       std::string_view program,
                                       std::string_view role,
                                       std::string_view node);

// An spdlog sink that sends each message to the journal with the fields
// above (sd_journal_sendv).
std::shared_ptr<spdlog::sinks::sink> NewJournalSink(std::string program);

// The N_ID every later journal entry carries as KGR_NODE ("" before).
void SetJournalNodeField(std::string n_id);

}  // namespace kgr

#endif  // KGR_DAEMON_JOURNAL_LOG_H_
