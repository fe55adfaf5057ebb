-- The closed-loop charge load of charge-concurrency.js and health-ceiling.js, driven by wrk
-- instead of k6. wrk spends a fraction of k6's CPU per request, and on this 2-core machine the
-- generator shares the cores with the engine, MariaDB and the broker: k6 alone took 58 % of the
-- CPU at 4,700 charges/s (BENCHMARKS.md). `loadtests/run charge-wrk health-wrk` runs it:
--   wrk -t1 -c$VUS -d$DURATION --latency -s loadtests/wrk.lua $BASE_URL
-- Environment:
--   MODE=charge   POST /points/{buyer}?point=N, buyer FIRST_BUYER..FIRST_BUYER+BUYERS-1
--                 (1..7), N random 1..1000; each answer must be 200 with that `amount`
--   MODE=pay      the realistic payment flow: POST /orders for a random buyer of the set
--                 (totalPrice 1..PRICE_MAX, 10) answered 201, then, as the next request of the
--                 same wrk thread, POST /orders/payment/kafka of that order answered 200 with
--                 its receipt. Each payment is two requests; the demo buyers' 1,000,000 points
--                 each fund the run.
--   MODE=pay-refund  MODE=pay with refunds in the mix: after REFUND_PERCENT (50) % of the
--                 payments, the next request of the thread refunds a random part of it
--                 (POST /payments/{id}/refunds), answered 201 with that amount
--   MODE=distinct POST /points/{buyer}?point=N as MODE=charge, each to a buyer never seen before
--                 (FIRST_BUYER, FIRST_BUYER + 1, ..., each thread 10^9 further): every charge a
--                 first touch, the live actors growing at the charge rate (the memory test at
--                 wrk's speed: `loadtests/run distinct-wrk`, its RSS column)
--   MODE=health   GET /health/live; each answer must be 200
--   SUMMARY_FILE  where done() writes the JSON summary loadtests/run checks against the database
--   SUMMARY_NAME  the scenario's name in it
-- wrk measures latency the closed-loop way, as the k6 scenarios it stands beside.

local MODE = os.getenv("MODE") or "charge"
local BUYERS = tonumber(os.getenv("BUYERS") or "7")
local FIRST_BUYER = tonumber(os.getenv("FIRST_BUYER") or "1")
local PRICE_MAX = tonumber(os.getenv("PRICE_MAX") or "10")
local REFUND_PERCENT = tonumber(os.getenv("REFUND_PERCENT") or "50")
local PAYING = MODE == "pay" or MODE == "pay-refund"
local DISTINCT = MODE == "distinct"
local CHARGING = MODE == "charge" or DISTINCT

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
-- MODE=pay: orders created (201) and not yet paid, a FIFO of {buyer, order}; payments (200).
created, payments, queue, head, tail = 0, 0, {}, 1, 0
-- MODE=pay-refund: payments to refund, a FIFO of {buyer, payment, amount}; refunds (201) and
-- the points they gave back.
refunds, refunded, to_refund, rhead, rtail = 0, 0, {}, 1, 0
-- MODE=distinct: charges this thread sent. Its number is the global `id` setup() gave it (the
-- chunk's local `id` is that of the main state, 0 in a thread's).
sent = 0

function init(args)
  math.randomseed(os.time() * 1000 + id)
  if MODE == "health" then
    wrk.method = "GET"
    wrk.path = "/health/live"
  else
    wrk.method = "POST"
  end
  wrk.headers["Content-Type"] = PAYING and "application/json" or nil
end

local function random_buyer()
  return FIRST_BUYER + math.random(0, BUYERS - 1)
end

function request()
  if MODE == "health" then
    return wrk.format()
  end
  if PAYING then
    if rhead <= rtail then
      local p = to_refund[rhead]
      to_refund[rhead] = nil
      rhead = rhead + 1
      return wrk.format(nil, "/payments/" .. p[2] .. "/refunds", nil,
        string.format('{"buyerId":%d,"amount":%d}', p[1], math.random(1, p[3])))
    end
    if head <= tail then
      local order = queue[head]
      queue[head] = nil
      head = head + 1
      return wrk.format(nil, "/orders/payment/kafka", nil,
        string.format('{"buyerId":%d,"orderId":%d}', order[1], order[2]))
    end
    return wrk.format(nil, "/orders", nil,
      string.format('{"buyerId":%d,"totalPrice":%d}', random_buyer(), math.random(1, PRICE_MAX)))
  end
  local buyer = random_buyer()
  if DISTINCT then
    buyer = FIRST_BUYER + ((rawget(_G, "id") or 1) - 1) * 1000000000 + sent
    sent = sent + 1
  end
  return wrk.format(nil, "/points/" .. buyer .. "?point=" .. math.random(1, 1000))
end

-- MODE=pay: a 201 queues its order for payment; a 200 must be a receipt. MODE=pay-refund: some
-- receipts queue a refund, whose 201 carries a refundId.
local function paid_or_created(status, body)
  if status == 201 and string.find(body, '"refundId"', 1, true) then
    local amount = tonumber(string.match(body, '"amount"%s*:%s*(%d+)'))
    if not amount or amount < 1 or amount > PRICE_MAX then
      return false
    end
    refunds = refunds + 1
    refunded = refunded + amount
    return true
  end
  if status == 201 then
    local order = tonumber(string.match(body, '"orderId"%s*:%s*(%d+)'))
    local buyer = tonumber(string.match(body, '"buyerId"%s*:%s*(%d+)'))
    if not (order and buyer and string.find(body, '"PENDING"', 1, true)) then
      return false
    end
    created = created + 1
    tail = tail + 1
    queue[tail] = { buyer, order }
    return true
  end
  local amount = tonumber(string.match(body, '"amount"%s*:%s*(%d+)'))
  if status ~= 200 or not string.find(body, '"paymentId"', 1, true) or not amount
    or amount < 1 or amount > PRICE_MAX then
    return false
  end
  payments = payments + 1
  points = points + amount
  if MODE == "pay-refund" and math.random(1, 100) <= REFUND_PERCENT then
    local payment = tonumber(string.match(body, '"paymentId"%s*:%s*(%d+)'))
    local buyer = tonumber(string.match(body, '"buyerId"%s*:%s*(%d+)'))
    rtail = rtail + 1
    to_refund[rtail] = { buyer, payment, amount }
  end
  return true
end

function response(status, headers, body)
  if PAYING then
    if body and paid_or_created(status, body) then
      ok = ok + 1
    else
      bad = bad + 1
    end
    return
  end
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
  local good, wrong, moved, orders, paid, back, back_points = 0, 0, 0, 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    good = good + thread:get("ok")
    wrong = wrong + thread:get("bad")
    moved = moved + thread:get("points")
    orders = orders + thread:get("created")
    paid = paid + thread:get("payments")
    back = back + thread:get("refunds")
    back_points = back_points + thread:get("refunded")
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  local seconds = summary.duration / 1e6
  local charges = CHARGING and good or 0
  local errors = wrong + socket_errors
  local ms = function(us) return us / 1000 end
  local json = string.format([[{"generator":"wrk","derived":{
  "name":"%s","scale":1,"loadSeconds":%.3f,"requests":%d,"reqPerSec":%.3f,
  "latencyMs":{"avg":%.3f,"med":%.3f,"p95":%.3f,"p99":%.3f,"max":%.3f},
  "errors":%d,"checks":{"passed":%d,"failed":%d},"droppedIterations":0,
  "socketErrors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},
  "accepted":{"charges":%d,"chargePoints":%d,"payments":%d,"paymentPoints":%d,"ordersCreated":%d,
    "refunds":%d,"refundPoints":%d},
  "acceptedPerSec":{"charges":%.3f,"payments":%.3f},
  "maxAmount":%d,
  "buyers":{},"balancesMatchAccepted":true,"consistencyErrors":0,"thresholdsFailed":[%s],"ok":%s}}
]],
    os.getenv("SUMMARY_NAME") or MODE, seconds, summary.requests, summary.requests / seconds,
    ms(latency.mean), ms(latency:percentile(50)), ms(latency:percentile(95)),
    ms(latency:percentile(99)), ms(latency.max),
    errors, good, wrong, e.connect, e.read, e.write, e.timeout,
    charges, CHARGING and moved or 0, paid, PAYING and moved or 0, orders, back, back_points,
    charges / seconds, paid / seconds, PAYING and PRICE_MAX or 1000,
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
