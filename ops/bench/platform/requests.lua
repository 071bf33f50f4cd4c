-- wrk script for ops/bench/platform/run.sh: replays the requests listed (one per line, tab
-- separated header name/value pairs) in the file named by $BENCH_REQUESTS, in order, each wrk
-- thread starting at its own offset. Built at thread start so the script itself stays small.
-- $BENCH_PATH is the request target (default /api/tenant).
local reqs = {}
local counter = 0
local threads = {}
not_ok = 0
last_bad = 0

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

-- wrk itself counts only 4xx/5xx as errors; a redirect (unknown tenant) must count too.
function response(status, headers, body)
  if status ~= 200 then
    not_ok = not_ok + 1
    last_bad = status
  end
end

function done(summary, latency, requests)
  local n = 0
  local last = 0
  for _, t in ipairs(threads) do
    n = n + t:get("not_ok")
    if t:get("last_bad") ~= 0 then last = t:get("last_bad") end
  end
  io.write(string.format("not-200 responses: %d (last one: %d)\n", n, last))
end

function init(args)
  local path = os.getenv("BENCH_PATH") or "/api/tenant"
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    local headers = {}
    local key = nil
    for field in string.gmatch(line, "[^\t]+") do
      if key then
        headers[key] = field
        key = nil
      else
        key = field
      end
    end
    reqs[#reqs + 1] = wrk.format("GET", path, headers)
  end
  -- Disjoint slices per thread ($BENCH_THREADS = wrk's -t): signed lists must not replay.
  counter = math.floor(#reqs / (tonumber(os.getenv("BENCH_THREADS")) or 4)) * index
end

function request()
  counter = counter + 1
  return reqs[(counter - 1) % #reqs + 1]
end
