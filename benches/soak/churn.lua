-- wrk script: never-seen posts (misses) and on-demand revalidations of warmed posts (see benches/soak.sh).
local threads = {}
local counter = 0
function setup(thread)
    thread:set("id", #threads)
    table.insert(threads, thread)
end
function init(args)
    ok, s4xx, s5xx = 0, 0, 0
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
function response(status, headers, body)
    if status >= 500 then s5xx = s5xx + 1 elseif status >= 400 then s4xx = s4xx + 1 else ok = ok + 1 end
end
function done(summary, latency, requests)
    local t = { ok = 0, s4xx = 0, s5xx = 0 }
    for _, thread in ipairs(threads) do
        for k in pairs(t) do t[k] = t[k] + thread:get(k) end
    end
    print(string.format("ok: %d\n4xx: %d\n5xx: %d", t.ok, t.s4xx, t.s5xx))
end
