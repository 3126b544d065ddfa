# bench_groups_smoke: kgr-bench --groups with small groups exits 0 (every
# member converged) and prints the expected JSON. Never asserts on timing.
# Usage: cmake -DBENCH=path/to/kgr-bench -P groups_smoke.cmake
execute_process(
  COMMAND ${BENCH} --groups --sizes 16,300
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err
  RESULT_VARIABLE rc
  TIMEOUT 100)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kgr-bench --groups exited with '${rc}'\nstderr:\n${err}")
endif()
foreach(path
    "command" "arity" "groups;1;members" "groups;1;depth"
    "groups;0;one_leave;lkh;ks_cpu_ms" "groups;0;one_leave;lkh;wraps"
    "groups;1;one_leave;lkh;bytes_published"
    "groups;1;one_leave;unicast;bytes_published"
    "groups;1;one_leave;lkh;member_cpu;p50_us"
    "groups;1;batch_1pct_leaves;lkh;all_members_hold_ms"
    "groups;1;batch_1pct_leaves;bytes_ratio_unicast_over_lkh")
  string(JSON value ERROR_VARIABLE jerr GET "${out}" ${path})
  if(jerr)
    message(FATAL_ERROR "kgr-bench --groups JSON lacks '${path}': ${jerr}\n${out}")
  endif()
endforeach()
string(JSON wraps GET "${out}" groups 1 one_leave lkh wraps)
# 300 members: depth 5, at most 4 * 5 - 1 wraps, at least one per level.
if(wraps LESS 5 OR wraps GREATER 19)
  message(FATAL_ERROR "expected 5..19 wraps for one leave of 300, got ${wraps}")
endif()
message(STATUS "kgr-bench --groups smoke: OK")
