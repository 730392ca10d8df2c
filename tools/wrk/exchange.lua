-- wrk: POST /token exchanging authorization codes, each code once. Thread i of -t T takes
-- lines i, i+T, i+2T, ... of $CODES_FILE (prepared by the bench harness's --wrk-prepare ...
-- --codes N); a thread that has used all of its codes sends a spent one, which is refused
-- (non-200), and done() says so: the figures of such a run are not an exchange's.
-- Environment: CODES_FILE, CODES_THREADS (T), CODES_REDIRECT (the redirect_uri, URL-encoded),
-- CLIENT_BASIC (base64 of id:secret).
local basic = "Basic " .. os.getenv("CLIENT_BASIC")
local redirect = os.getenv("CODES_REDIRECT")
local threads = {}
function setup(thread)
  local n = #threads
  thread:set("id", n)
  -- An address of its own per thread (X-Forwarded-For; the bench config trusts 127.0.0.1),
  -- so that the per-address client-authentication throttle is not what is measured.
  thread:set("xff", "10.1." .. math.floor((n + 1) / 250) .. "." .. ((n + 1) % 250 + 1))
  threads[n + 1] = thread
end

function init(args)
  codes = {}
  used = 0
  spent = 0
  local t = tonumber(os.getenv("CODES_THREADS"))
  local i = 0
  for line in io.lines(os.getenv("CODES_FILE")) do
    if #line > 0 then
      if i % t == id then codes[#codes + 1] = line end
      i = i + 1
    end
  end
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
  local out = 0
  for _, thread in ipairs(threads) do out = out + thread:get("spent") end
  io.write(string.format("non-200 answers: %d\n", summary.errors.status))
  if out > 0 then
    io.write(string.format("codes ran out: %d requests sent a spent code (prepare more: CODES)\n", out))
  end
end
