-- 16 GET requests sent back to back on each connection, in one write, before any response is read.
-- wrk counts the requests in the batch and waits for all 16 responses before sending the next batch.
local depth = 16

init = function(args)
   local batch = {}
   for i = 1, depth do
      batch[i] = wrk.format("GET", "/")
   end
   pipelined = table.concat(batch)
end

request = function()
   return pipelined
end
