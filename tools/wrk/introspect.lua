-- wrk: POST /introspect of one access token, client-authenticated.
-- Environment: ACCESS_TOKEN, CLIENT_BASIC.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("CLIENT_BASIC")
wrk.body = "token=" .. os.getenv("ACCESS_TOKEN")
function done(summary, latency, requests)
  io.write(string.format("non-200 answers: %d\n", summary.errors.status))
end
local threads = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "threads.lua")
setup = threads.setup("10.0.")
function init(args)
  wrk.headers["X-Forwarded-For"] = xff
end
