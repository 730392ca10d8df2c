-- wrk: GET /userinfo with one access token.
-- Environment: ACCESS_TOKEN.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ACCESS_TOKEN")
function done(summary, latency, requests)
  io.write(string.format("non-200 answers: %d\n", summary.errors.status))
end
