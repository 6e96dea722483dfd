-- wrk script: GET the 50 warmed posts and the index at random; counts statuses (see benches/soak.sh).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "counts.lua")
function setup(thread) table.insert(threads, thread) end
function init(args)
    counts_init()
    math.randomseed(os.time())
end
function request()
    local n = math.random(51)
    if n == 51 then return wrk.format("GET", "/") end
    return wrk.format("GET", "/blog/post-" .. n)
end
