-- Shared by the wrk scripts (loaded with `dofile` from the script's own directory): each wrk
-- thread's number and an address of its own, and its share of a file's lines.
local M = { all = {} }

-- A `setup` for wrk: thread n (from 0) gets `id` = n and `xff` = PREFIX.a.b, an address of its
-- own for X-Forwarded-For (the bench config trusts 127.0.0.1), so that the per-address
-- client-authentication throttle is not what is measured.
function M.setup(prefix)
  return function(thread)
    local n = #M.all
    thread:set("id", n)
    thread:set("xff", prefix .. math.floor((n + 1) / 250) .. "." .. ((n + 1) % 250 + 1))
    M.all[n + 1] = thread
  end
end

-- The non-empty lines i, i+T, i+2T, ... of FILE for thread i of T (in a thread's `init`).
function M.lines(file, count, id)
  local mine, i = {}, 0
  for line in io.lines(file) do
    if #line > 0 then
      if i % count == id then mine[#mine + 1] = line end
      i = i + 1
    end
  end
  return mine
end

-- The sum over all threads of their global NAME (in `done`).
function M.sum(name)
  local total = 0
  for _, thread in ipairs(M.all) do total = total + (thread:get(name) or 0) end
  return total
end

return M
