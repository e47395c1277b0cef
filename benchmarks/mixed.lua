-- wrk script: POST a rotation of requests and count the answers whose status is not the one
-- expected, e.g.
--   wrk -t1 -c4 -d60s --latency -s mixed.lua http://127.0.0.1:8080 -- requests.txt 4xx
-- REQUESTS.txt holds one request a line, "PATH BODY" (the body is one line of JSON, or not
-- JSON at all for the malformed ones). EXPECT is 2xx (good requests) or 4xx (bad ones).
-- done() prints "cdl-unexpected N" for the main script to read.
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local file = assert(args[1], "usage: -s mixed.lua URL -- REQUESTS.txt 2xx|4xx")
   expect = assert(args[2], "usage: -s mixed.lua URL -- REQUESTS.txt 2xx|4xx")
   requests = {}
   for line in io.lines(file) do
      local path, body = line:match("^(%S+) (.*)$")
      table.insert(requests, wrk.format("POST", path,
                                        {["Content-Type"] = "application/json"}, body))
   end
   assert(#requests > 0, "no requests in " .. file)
   next_request = 0
   unexpected = 0
end

function request()
   next_request = next_request % #requests + 1
   return requests[next_request]
end

function response(status, headers, body)
   local ok
   if expect == "2xx" then ok = status >= 200 and status < 300
   else ok = status >= 400 and status < 500 end
   if not ok then unexpected = unexpected + 1 end
end

function done(summary, latency, requests)
   local total = 0
   for _, thread in ipairs(threads) do total = total + thread:get("unexpected") end
   io.write(string.format("cdl-unexpected %d\n", total))
end
