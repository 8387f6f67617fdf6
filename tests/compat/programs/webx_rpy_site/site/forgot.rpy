# No "resource" assigned: the server says so.
x = 1
