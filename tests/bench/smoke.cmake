# bench_smoke: kgr-bench with tiny numbers exits 0 and prints one JSON object
# with the expected keys. Never asserts on timing.
# Usage: cmake -DBENCH=path/to/kgr-bench -P smoke.cmake
execute_process(
  COMMAND ${BENCH} --nodes 4 --window 2 --count 20 --warmup 4
          --scale-nodes 50
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err
  RESULT_VARIABLE rc
  TIMEOUT 240)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kgr-bench exited with '${rc}'\nstderr:\n${err}")
endif()
foreach(path
    "command" "machine;nproc" "machine;cpu_model" "config;window"
    "establishments" "establishments_per_s" "errors"
    "latency_ms;p50" "latency_ms;p90" "latency_ms;p99" "latency_ms;max"
    "bare;exchanges_per_s" "bare;latency_ms;p50" "bare_rate_per_s" "ratio"
    "rounds;0;ratio" "rounds;4;bare_exchanges_per_s" "config;mqtt_client"
    "rounds;0;cpu_us_split;3" "rounds;4;bare_cpu_us_split;0"
    "rounds;0;ks_fsyncs_per_establishment"
    "ks;cpu_s_loop_thread" "ks;fsyncs_per_establishment"
    "ks;nv_writes_per_establishment" "ks;tpm_commands_per_establishment"
    "process_peak_rss_kb" "frame_sizes;nnsk_key_req"
    "scale;cold_start;ready_ms" "scale;cold_start;rss_kb"
    "scale;ks_rss_bytes_per_registered_node")
  string(JSON value ERROR_VARIABLE jerr GET "${out}" ${path})
  if(jerr)
    message(FATAL_ERROR "kgr-bench JSON lacks '${path}': ${jerr}\n${out}")
  endif()
endforeach()
string(JSON n GET "${out}" establishments)
if(NOT n EQUAL 20)
  message(FATAL_ERROR "expected 20 establishments, got ${n}\n${out}")
endif()
message(STATUS "kgr-bench smoke: OK")
