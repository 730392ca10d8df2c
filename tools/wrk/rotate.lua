-- wrk: POST /token for a rotating client, every request the next step of a rotation chain (the
-- answer's new refresh token is that chain's next). Thread i of -t T takes lines i, i+T, i+2T,
-- ... of $ROTATING_FILE as its free chains: -c N -t T wants N + T lines, a chain for each
-- connection and one spare per thread (wrk calls request() once before the run, on the first
-- thread, to check the script; the chain handed to that call is never sent). A request takes a
-- free chain and its answer gives it back, so no chain is ever in two requests at once and one
-- thread drives many connections. A chain whose refresh was refused is dropped (and counted as
-- a non-200 answer).
-- Environment: ROTATING_FILE, ROTATING_THREADS (T), ROTATING_BASIC (base64 of id:secret).
local threads = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "threads.lua")
local basic = "Basic " .. os.getenv("ROTATING_BASIC")
setup = threads.setup("10.0.")

function init(args)
  free = threads.lines(os.getenv("ROTATING_FILE"), tonumber(os.getenv("ROTATING_THREADS")), id)
  starved = 0
end

function request()
  local token = table.remove(free)
  if token == nil then
    -- More connections than chains on this thread: refused, and said in done().
    starved = starved + 1
    token = "none"
  end
  return wrk.format("POST", "/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = basic,
    ["X-Forwarded-For"] = xff,
  }, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  if status == 200 then
    local new = body:match('"refresh_token":"([^"]+)"')
    if new then free[#free + 1] = new end
  end
end

function done(summary, latency, requests)
  local out = threads.sum("starved")
  io.write(string.format("non-200 answers: %d\n", summary.errors.status))
  if out > 0 then
    io.write(string.format("requests without a free chain: %d (fewer chains than connections)\n", out))
  end
end
