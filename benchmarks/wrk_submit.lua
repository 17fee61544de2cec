-- wrk load for POST /api/v1/jobs (one job per request, a unique Idempotency-Key each):
--   wrk -t2 -c16 -d10s -s benchmarks/wrk_submit.lua http://127.0.0.1:PORT -- TOKEN RUNID
-- Non-201 answers are printed to stderr. Keep it on 127.0.0.1.
wrk.method = "POST"
wrk.body = '{"name": "bench", "command": ["true"], "resources": {"devices": 1}, "duration_s": 60}'
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/api/v1/jobs", {["Content-Type"]="application/json", ["Authorization"]="Bearer " .. token, ["Idempotency-Key"]=prefix .. "-" .. tid .. "-" .. n}, wrk.body)
end
init = function(args) token = args[1]; prefix = args[2] end
local counter = 0
setup = function(thread) counter = counter + 1; thread:set("tid", tostring(counter)) end
response = function(status, headers, body)
  if status ~= 201 then io.stderr:write("status " .. status .. "\n") end
end
