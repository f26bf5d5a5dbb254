-- wrk: GET of random preloaded 1 KiB objects (keys obj/0 .. obj/N-1) of the bench tenant, over
-- keep-alive connections. Environment: BENCH_TOKEN, BENCH_TENANT, BENCH_OBJECTS (bench/run);
-- BENCH_GRANT, when set, is sent as X-Custos-Grant (an operator under a just-in-time grant).
local token = os.getenv("BENCH_TOKEN")
local tenant = os.getenv("BENCH_TENANT")
local n = tonumber(os.getenv("BENCH_OBJECTS"))
local grant = os.getenv("BENCH_GRANT")
local prefix = "/v1/tenants/" .. tenant .. "/objects/obj/"

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. token
  if grant and grant ~= "" then wrk.headers["X-Custos-Grant"] = grant end
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

function request()
  return wrk.format("GET", prefix .. math.random(0, n - 1))
end
