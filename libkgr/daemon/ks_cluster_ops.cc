// RunClusterOp: approve, remove, finish-rotation (ks_cluster_ops.h).
#include "daemon/ks_cluster_ops.h"

namespace kgr {
namespace {

nlohmann::json ClusterOpFailed(const Status& st) {
  return {{"ok", false},
          {"error", st.message()},
          {"code", static_cast<int>(st.code())}};
}

nlohmann::json Rotated(const StatusOr<RotationReport>& r) {
  if (!r.ok()) return ClusterOpFailed(r.status());
  return {
      {"ok", true}, {"generation", r->generation}, {"resealed", r->resealed}};
}

}  // namespace

nlohmann::json RunClusterOp(const MemberAccess& me,
                            const nlohmann::json& request) {
  const std::string op = request.value("op", "");
  const int settle_ms = request.value("settle_ms", 2000);
  if (op == "approve") {
    Status st = ApproveJoin(me, request.value("fingerprint", ""));
    if (!st.ok()) return ClusterOpFailed(st);
    return {{"ok", true}};
  }
  if (op == "remove") {
    const int lane = request.value("lane", -1);
    if (lane < 0 || lane > 255) {
      return ClusterOpFailed(
          InvalidArgumentError("remove: --lane 0-255 needed"));
    }
    return Rotated(RemoveMember(me, static_cast<uint8_t>(lane), settle_ms));
  }
  if (op == "finish") return Rotated(FinishRotation(me, settle_ms));
  return ClusterOpFailed(
      InvalidArgumentError("cluster: unknown operation '" + op + "'"));
}

}  // namespace kgr
