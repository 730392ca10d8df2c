-- wrk: POST /introspect of one access token, client-authenticated.
-- Environment: ACCESS_TOKEN, CLIENT_BASIC.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("CLIENT_BASIC")
wrk.body = "token=" .. os.getenv("ACCESS_TOKEN")
function done(summary, latency, requests)
  io.write(string.format("non-200 answers: %d\n", summary.errors.status))
end
-- Each thread speaks for an address of its own (X-Forwarded-For; linkgate trusts 127.0.0.1 in
-- the bench config), so that the per-address client-authentication throttle is not what is
-- measured.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("xff", "10.0." .. math.floor(threads / 250) .. "." .. (threads % 250 + 1))
end
function init(args)
  wrk.headers["X-Forwarded-For"] = xff
end
