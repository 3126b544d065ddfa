// The CRL hook: a shell command told where the new CRL is (crl_hook.h).
#include "daemon/crl_hook.h"

#include <sys/wait.h>

#include <cstdlib>

namespace kgr {
namespace {

// 'text' for /bin/sh, whatever `text` holds.
std::string ShellQuoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace

Status RunCrlHookCommand(const std::string& command,
                         const std::string& crl_file) {
  const std::string script = "KGR_CRL_FILE=" + ShellQuoted(crl_file) +
                             "; export KGR_CRL_FILE; " + command;
  int rc = std::system(script.c_str());
  if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
    return UnavailableError("CRL hook '" + command + "' failed (status " +
                            std::to_string(rc) +
                            "): the broker may still accept the certificate");
  }
  return OkStatus();
}

}  // namespace kgr
