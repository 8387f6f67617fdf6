-- One session cookie per request, in turn: every request loads a session and stores it again.
-- The harness makes the sessions before the run and passes a file of their Cookie header values
-- (NAME=ID, one a line) as the script's argument: wrk ... URL -- cookies.txt
local requests = {}
local count = 0
local next_index = 0

init = function(args)
   for line in io.lines(args[1]) do
      if line ~= "" then
         count = count + 1
         requests[count] = wrk.format("GET", nil, { Host = wrk.headers["Host"], Cookie = line })
      end
   end
   assert(count > 0, "sessions.lua: no cookies in " .. tostring(args[1]))
end

request = function()
   next_index = next_index % count + 1
   return requests[next_index]
end
