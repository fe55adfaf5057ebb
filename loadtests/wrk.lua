-- The closed-loop charge load of charge-concurrency.js and health-ceiling.js, driven by wrk
-- instead of k6. wrk spends a fraction of k6's CPU per request, and on this 2-core machine the
-- generator shares the cores with the engine, MariaDB and the broker: k6 alone took 58 % of the
-- CPU at 4,700 charges/s (BENCHMARKS.md). `loadtests/run charge-wrk health-wrk` runs it:
--   wrk -t1 -c$VUS -d$DURATION --latency -s loadtests/wrk.lua $BASE_URL
-- Environment:
--   MODE=charge   POST /points/{buyer}?point=N, buyer FIRST_BUYER..FIRST_BUYER+BUYERS-1
--                 (1..7), N random 1..1000; each answer must be 200 with that `amount`
--   MODE=health   GET /health/live; each answer must be 200
--   SUMMARY_FILE  where done() writes the JSON summary loadtests/run checks against the database
--   SUMMARY_NAME  the scenario's name in it
-- wrk measures latency the closed-loop way, as the k6 scenarios it stands beside.

local MODE = os.getenv("MODE") or "charge"
local BUYERS = tonumber(os.getenv("BUYERS") or "7")
local FIRST_BUYER = tonumber(os.getenv("FIRST_BUYER") or "1")

local threads = {}
local id = 0

function setup(thread)
  id = id + 1
  thread:set("id", id)
  table.insert(threads, thread)
end

-- Per thread (each has its own Lua state): answers counted by kind, points the 200s charged.
-- Requests on one connection are sequential, but a thread serves many connections, so an answer
-- is matched to its amount through the answer's own `amount` instead of a request queue.
ok, bad, points = 0, 0, 0

function init(args)
  math.randomseed(os.time() * 1000 + id)
  if MODE == "health" then
    wrk.method = "GET"
    wrk.path = "/health/live"
  else
    wrk.method = "POST"
  end
end

function request()
  if MODE == "health" then
    return wrk.format()
  end
  local buyer = FIRST_BUYER + math.random(0, BUYERS - 1)
  local amount = math.random(1, 1000)
  return wrk.format(nil, "/points/" .. buyer .. "?point=" .. amount)
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    return
  end
  if MODE == "health" then
    ok = ok + 1
    return
  end
  local amount = body and tonumber(string.match(body, '"amount"%s*:%s*(%d+)'))
  if amount and amount >= 1 and amount <= 1000 then
    ok = ok + 1
    points = points + amount
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local good, wrong, charged = 0, 0, 0
  for _, thread in ipairs(threads) do
    good = good + thread:get("ok")
    wrong = wrong + thread:get("bad")
    charged = charged + thread:get("points")
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  local seconds = summary.duration / 1e6
  local charges = MODE == "charge" and good or 0
  local errors = wrong + socket_errors
  local ms = function(us) return us / 1000 end
  local json = string.format([[{"generator":"wrk","derived":{
  "name":"%s","scale":1,"loadSeconds":%.3f,"requests":%d,"reqPerSec":%.3f,
  "latencyMs":{"avg":%.3f,"med":%.3f,"p95":%.3f,"p99":%.3f,"max":%.3f},
  "errors":%d,"checks":{"passed":%d,"failed":%d},"droppedIterations":0,
  "socketErrors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},
  "accepted":{"charges":%d,"chargePoints":%d,"payments":0,"paymentPoints":0,"ordersCreated":0},
  "acceptedPerSec":{"charges":%.3f,"payments":0},
  "buyers":{},"balancesMatchAccepted":true,"consistencyErrors":0,"thresholdsFailed":[%s],"ok":%s}}
]],
    os.getenv("SUMMARY_NAME") or MODE, seconds, summary.requests, summary.requests / seconds,
    ms(latency.mean), ms(latency:percentile(50)), ms(latency:percentile(95)),
    ms(latency:percentile(99)), ms(latency.max),
    errors, good, wrong, e.connect, e.read, e.write, e.timeout,
    charges, MODE == "charge" and charged or 0, charges / seconds,
    errors > 0 and '"every answer 200 (and the amount asked, for charges)"' or "",
    errors > 0 and "false" or "true")
  local file = os.getenv("SUMMARY_FILE")
  if file then
    local f = assert(io.open(file, "w"))
    f:write(json)
    f:close()
  end
  io.write(string.format("%s: %d requests in %.1f s, %.1f/s, %d answered as expected, %d not\n",
    MODE, summary.requests, seconds, summary.requests / seconds, good, errors))
end
