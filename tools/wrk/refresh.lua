-- wrk: POST /token with one refresh token (a non-rotating client: the same token every time).
-- Environment: REFRESH_TOKEN, CLIENT_BASIC (base64 of id:secret).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("CLIENT_BASIC")
wrk.body = "grant_type=refresh_token&refresh_token=" .. os.getenv("REFRESH_TOKEN")

function done(summary, latency, requests)
  io.write(string.format("non-200 answers: %d\n", summary.errors.status))
end
local threads = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "threads.lua")
setup = threads.setup("10.0.")
function init(args)
  wrk.headers["X-Forwarded-For"] = xff
end
