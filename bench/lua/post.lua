-- A 1 KiB urlencoded form POST; the server echoes the field "name" (13 bytes: Hello, world!).
local head = "name=Hello%2C+world%21&filler="
wrk.method = "POST"
wrk.body = head .. string.rep("x", 1024 - #head)
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
