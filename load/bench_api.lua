-- wrk's requests for load/bench_api.py: one route per run (BENCH_ROUTE), the key in BENCH_KEY,
-- existing lead ids in the file BENCH_IDS. Every created lead has an email of its own.
local route = os.getenv("BENCH_ROUTE")
local run = os.getenv("BENCH_RUN")
local headers = {
  ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"),
  ["Content-Type"] = "application/json",
}
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end

local n = 0
function init(args)
  math.randomseed(tid * 7919)
end

local function lead(email)
  return string.format(
    '{"first_name":"Ada","last_name":"Lovelace","email":"%s","phone":"+12125550100",' ..
    '"company":"Analytical Engines","source":"web","status":"new","score":%d,' ..
    '"attributes":{"campaign":"c7","tags":["load","x"],"nested":{"n":1}}}',
    email, n % 101)
end

function request()
  n = n + 1
  if route == "create" then
    return wrk.format("POST", "/leads", headers, lead(string.format("%s-%d-%d@example.com", run, tid, n)))
  elseif route == "replace" then
    local id = ids[math.random(#ids)]
    return wrk.format("PUT", "/leads/" .. id, headers, lead("put-" .. id .. "@example.com"))
  elseif route == "get" then
    return wrk.format("GET", "/leads/" .. ids[math.random(#ids)], headers)
  else
    return wrk.format("POST", "/tasks", headers, '{"type":"noop","payload":{"echo":{"from":"bench"}}}')
  end
end

-- The first refused request of each thread, to be shown: a benchmark of errors measures nothing.
refused = ""
function response(status, headers, body)
  if status >= 400 and refused == "" then
    refused = status .. " " .. body:sub(1, 300)
  end
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local answer = thread:get("refused")
    if answer ~= "" then io.write("REFUSED " .. answer .. "\n") end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d,"status_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
