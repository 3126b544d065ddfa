// Internal to libkgr/daemon: the CRL hook both `kgr-ac revoke`/`crl`
// (crl_hook) and kgr-ks (node_ca.crl_hook) run after writing a CRL.
#ifndef KGR_DAEMON_CRL_HOOK_H_
#define KGR_DAEMON_CRL_HOOK_H_

#include <string>

#include "kgr/status.h"

namespace kgr {

// Runs `command` with /bin/sh, KGR_CRL_FILE=`crl_file` in its environment
// (exported by the shell, not with setenv: the daemons have threads), and
// waits for it. UNAVAILABLE (naming the command and its status) unless it
// exits 0. The contract: broker-config/reload-crl.sh.
Status RunCrlHookCommand(const std::string& command,
                         const std::string& crl_file);

}  // namespace kgr

#endif  // KGR_DAEMON_CRL_HOOK_H_
