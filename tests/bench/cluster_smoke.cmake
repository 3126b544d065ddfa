# bench_cluster_smoke: kgr-bench --ks-instances 1,2 with tiny numbers (real
# kgr-ks processes: one on files, then 1 and 2 on a 1-member etcd, then the
# failover run) exits 0 and prints the cluster figures. Never asserts on
# timing; checks that no establishment failed outright.
# Usage: cmake -DBENCH=path/to/kgr-bench -P cluster_smoke.cmake
execute_process(
  COMMAND ${BENCH} --nodes 8 --window 4 --count 40 --warmup 8 --rounds 1
          --etcd --ks-instances 1,2 --failover-s 6
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err
  RESULT_VARIABLE rc
  TIMEOUT 280)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kgr-bench exited with '${rc}'\nstderr:\n${err}")
endif()
foreach(path
    "cluster;files;establishments_per_s" "cluster;files;latency_ms;p99"
    "cluster;etcd;0;instances" "cluster;etcd;0;ratio_to_files"
    "cluster;etcd;1;establishments_per_s" "cluster;etcd;1;latency_ms;p99"
    "cluster;failover;gap_s" "cluster;failover;held_all_completed_after_s"
    "cluster;failover;latency_ms_after;p99" "cluster;load_average_start")
  string(JSON value ERROR_VARIABLE jerr GET "${out}" ${path})
  if(jerr)
    message(FATAL_ERROR "kgr-bench JSON lacks '${path}': ${jerr}\n${out}")
  endif()
endforeach()
foreach(i 0 1)
  string(JSON k GET "${out}" cluster etcd ${i} instances)
  string(JSON n GET "${out}" cluster etcd ${i} rounds 0 establishments)
  if(NOT n EQUAL 40)
    message(FATAL_ERROR "etcd, ${k} instances: ${n} of 40 establishments\n${out}")
  endif()
endforeach()
string(JSON n GET "${out}" cluster files rounds 0 establishments)
if(NOT n EQUAL 40)
  message(FATAL_ERROR "files: ${n} of 40 establishments\n${out}")
endif()
string(JSON failed GET "${out}" cluster failover held_failed)
if(NOT failed EQUAL 0)
  message(FATAL_ERROR "${failed} establishments held at the kill failed\n${out}")
endif()
message(STATUS "kgr-bench --ks-instances smoke: OK")
