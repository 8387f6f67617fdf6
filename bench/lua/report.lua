-- Appended by bench/run.py to every wrk script: prints one machine-readable line when wrk is done.
-- Latencies are in microseconds; duration is wrk's measured run time in microseconds.
done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "WRK_RESULT {\"requests\": %.0f, \"bytes\": %.0f, \"duration_us\": %.0f, " ..
      "\"errors\": {\"connect\": %.0f, \"read\": %.0f, \"write\": %.0f, \"status\": %.0f, \"timeout\": %.0f}, " ..
      "\"latency_us\": {\"p50\": %.0f, \"p90\": %.0f, \"p99\": %.0f, \"max\": %.0f, \"mean\": %.1f}}\n",
      summary.requests, summary.bytes, summary.duration,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
