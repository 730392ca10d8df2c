-- wrk: POST /token for a rotating client, each connection following its own rotation chain
-- (every answer's new refresh token is the next request's): run with as many threads as
-- connections (-t N -c N), thread i taking line i of $ROTATING_FILE.
-- Environment: ROTATING_FILE, ROTATING_BASIC (base64 of id:secret).
local tokens = {}
for line in io.lines(os.getenv("ROTATING_FILE")) do
  if #line > 0 then tokens[#tokens + 1] = line end
end
-- Each thread also speaks for an address of its own (X-Forwarded-For; linkgate trusts
-- 127.0.0.1 in the bench config), so that the per-address client-authentication throttle is
-- not what is measured.
local next_id = 1
function setup(thread)
  thread:set("token", tokens[next_id])
  thread:set("xff", "10.0." .. math.floor(next_id / 250) .. "." .. (next_id % 250 + 1))
  next_id = next_id + 1
end

local basic = "Basic " .. os.getenv("ROTATING_BASIC")
function request()
  return wrk.format("POST", "/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = basic,
    ["X-Forwarded-For"] = xff,
  }, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  if status == 200 then
    local new = body:match('"refresh_token":"([^"]+)"')
    if new then token = new end
  end
end

function done(summary, latency, requests)
  io.write(string.format("non-200 answers: %d\n", summary.errors.status))
end
