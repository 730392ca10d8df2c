-- wrk: POST /token exchanging authorization codes, each code once. Thread i of -t T takes
-- lines i, i+T, i+2T, ... of $CODES_FILE (stored by the bench harness's --wrk-codes DIR N); a
-- thread that has used all of its codes sends a spent one, which is refused (non-200), and
-- done() says so: the figures of such a run are not an exchange's.
-- Environment: CODES_FILE, CODES_THREADS (T), CODES_REDIRECT (the redirect_uri, URL-encoded),
-- CLIENT_BASIC (base64 of id:secret).
local threads = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "threads.lua")
local basic = "Basic " .. os.getenv("CLIENT_BASIC")
local redirect = os.getenv("CODES_REDIRECT")
setup = threads.setup("10.1.")

function init(args)
  codes = threads.lines(os.getenv("CODES_FILE"), tonumber(os.getenv("CODES_THREADS")), id)
  used = 0
  spent = 0
end

function request()
  used = used + 1
  local code = codes[used]
  if code == nil then
    spent = spent + 1
    code = codes[1] or "none"
  end
  return wrk.format("POST", "/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = basic,
    ["X-Forwarded-For"] = xff,
  }, "grant_type=authorization_code&code=" .. code .. "&redirect_uri=" .. redirect)
end

function done(summary, latency, requests)
  local out = threads.sum("spent")
  io.write(string.format("non-200 answers: %d\n", summary.errors.status))
  if out > 0 then
    io.write(string.format("codes ran out: %d requests sent a spent code (prepare more: CODES)\n", out))
  end
end
