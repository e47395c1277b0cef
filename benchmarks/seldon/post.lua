-- wrk script: POST one fixed JSON body, read from the file named after `--`, e.g.
--   wrk -t1 -c4 -d5s -s post.lua http://127.0.0.1:9000/api/v1.0/predictions -- body.json
-- The body is read once per thread in init(), before measuring. wrk itself reports failures
-- ("Non-2xx or 3xx responses"), so no response() hook slows the client down.
function init(args)
   local file = assert(io.open(assert(args[1], "usage: -s post.lua URL -- BODY.json"), "rb"))
   wrk.body = file:read("*a")
   file:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end
