-- wrk script for the Studio's benchmark: each request asks for a random feature's page data
-- (GET /api/indexes/INDEX/features/N) and any answer other than 200 counts as an error.
-- Set STUDIO_INDEX and STUDIO_FEATURES in the environment.
local index = os.getenv("STUDIO_INDEX") or "synthetic"
local features = tonumber(os.getenv("STUDIO_FEATURES") or "6144")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  failures = 0
end

function request()
  return wrk.format("GET", "/api/indexes/" .. index .. "/features/" .. math.random(0, features - 1))
end

function response(status, headers, body)
  if status ~= 200 then failures = failures + 1 end
end

function done(summary, latency, requests)
  local failed = 0
  for _, t in ipairs(threads) do failed = failed + t:get("failures") end
  io.write(string.format('{"requests": %d, "seconds": %.3f, "p50_ms": %.2f, "p95_ms": %.2f, "p99_ms": %.2f, ' ..
    '"max_ms": %.2f, "non_200": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, failed,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
