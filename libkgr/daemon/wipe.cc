// `wipe`: decommissioning. After a typed confirmation (or --yes), erases
// what kgr made in the TPM (its NV indices, the ANK and KEDK) and its files
// in the state directory, so that the device can be provisioned again.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

#include "daemon/wiring.h"
#include "kgr/control.h"
#include "kgr/own_data.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

constexpr char kConfirmWord[] = "wipe";

// Names (and name prefixes: stores add suffixes, atomic writes a temporary
// one) of what kgr keeps in a state directory. Nothing else is removed.
constexpr const char* kKgrEntries[] = {
    "ses_keys", "grp_keys", "node_desc", "gen_keys", "groups", "domain_key",
    "ac_counter", "counter", "tls", "control.sock", "lock", "nv-auth",
    "software-tpm.bin", "node_certs"};

bool IsKgrEntry(const std::string& name) {
  for (const char* prefix : kKgrEntries) {
    if (name.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

Status Confirm(const std::string& what, bool yes) {
  if (yes) return OkStatus();
  if (!::isatty(STDIN_FILENO)) {
    return InvalidArgumentError(
        "wipe erases the TPM's kgr state; without a terminal to confirm on "
        "it needs --yes");
  }
  std::fprintf(stderr, "%s\nType \"%s\" to erase it: ", what.c_str(),
               kConfirmWord);
  std::string answer;
  if (!std::getline(std::cin, answer) || answer != kConfirmWord) {
    return AbortedError("not confirmed; nothing was erased");
  }
  return OkStatus();
}

// What is about to go, for the prompt.
std::string Describe(Tpm& tpm, const DaemonOptions& o) {
  std::string who = "no kgr identity";
  auto own = LoadOwnData(tpm);
  if (own.ok()) {
    who = std::string(own->identity.role == Role::kKeyServer ? "Key Server "
                                                             : "node ") +
          FormatNodeId(own->identity.n_id);
  }
  return "This erases " + who + ": kgr's NV indices and keys in the TPM (" +
         o.tcti + ") and its files in " + o.state_dir +
         ". The device must then be provisioned again (init).";
}

// Removes kgr's entries of the state directory, then the directory if
// nothing else is in it. Returns the names it left.
StatusOr<std::vector<std::string>> RemoveStateFiles(const std::string& dir) {
  std::vector<std::string> left;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return left;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!IsKgrEntry(name)) {
      left.push_back(name);
      continue;
    }
    std::filesystem::remove_all(entry.path(), ec);
    if (ec)
      return InternalError("cannot remove " + entry.path().string() + ": " +
                           ec.message());
  }
  if (ec) return InternalError("cannot list " + dir + ": " + ec.message());
  if (left.empty()) std::filesystem::remove(dir, ec);
  return left;
}

}  // namespace

Status Wipe(const DaemonOptions& o, bool yes) {
  // The lock: no daemon may run on this state directory meanwhile.
  KGR_ASSIGN_OR_RETURN(auto lock, DirLock::ForStateDir(o.state_dir));
  KGR_ASSIGN_OR_RETURN(auto tpm, OpenTpmFor(o));
  KGR_RETURN_IF_ERROR(Confirm(Describe(*tpm, o), yes));
  for (int i = 0; i < kNvSlotCount; ++i) {
    const NvSlot slot = static_cast<NvSlot>(i);
    KGR_RETURN_IF_ERROR(tpm->NvErase(slot).Annotate(
        "erasing NV slot " + std::string(NvSlotName(slot))));
  }
  KGR_RETURN_IF_ERROR(tpm->RemoveKeys().Annotate("evicting kgr's keys"));
  tpm.reset();
  KGR_ASSIGN_OR_RETURN(std::vector<std::string> left,
                       RemoveStateFiles(o.state_dir));
  lock.reset();
  std::printf(
      "wiped: kgr's NV indices and keys erased from the TPM, its "
      "files removed from %s",
      o.state_dir.c_str());
  if (!left.empty()) {
    std::printf(" (left %zu entries that are not kgr's, e.g. %s)", left.size(),
                left[0].c_str());
  }
  std::printf("; run init to provision the device again\n");
  return OkStatus();
}

}  // namespace kgr
