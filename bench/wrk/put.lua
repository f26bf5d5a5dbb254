-- wrk: PUT of 1 KiB objects to distinct new keys (put/<run>/<thread>/<n>) of the bench tenant,
-- over keep-alive connections. Environment: BENCH_TOKEN, BENCH_TENANT, BENCH_RUN (bench/run).
local token = os.getenv("BENCH_TOKEN")
local tenant = os.getenv("BENCH_TENANT")
local run = os.getenv("BENCH_RUN") or "0"
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/octet-stream"
  math.randomseed(os.time() + id)
  local bytes = {}
  for i = 1, 1024 do bytes[i] = string.char(math.random(0, 255)) end
  body = table.concat(bytes)
  prefix = "/v1/tenants/" .. tenant .. "/objects/put/" .. run .. "/" .. id .. "/"
  counter = 0
end

function request()
  counter = counter + 1
  return wrk.format("PUT", prefix .. counter, nil, body)
end
