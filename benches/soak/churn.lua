-- wrk script: never-seen posts (misses) and on-demand revalidations of warmed posts (see benches/soak.sh).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "counts.lua")
local counter = 0
function setup(thread)
    thread:set("id", #threads)
    table.insert(threads, thread)
end
function init(args)
    counts_init()
    math.randomseed(os.time() + id)
end
function request()
    counter = counter + 1
    if counter % 10 == 0 then
        local path = "/blog/post-" .. math.random(50)
        return wrk.format("POST", "/_isr/revalidate?path=" .. path, { ["Authorization"] = "Bearer soak" }, "")
    end
    return wrk.format("GET", "/blog/miss-" .. id .. "-" .. counter .. "-" .. math.random(1000000))
end
