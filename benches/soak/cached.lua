-- wrk script: GET the 50 warmed posts and the index at random; counts statuses (see benches/soak.sh).
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
    ok, s4xx, s5xx = 0, 0, 0
    math.randomseed(os.time())
end
function request()
    local n = math.random(51)
    if n == 51 then return wrk.format("GET", "/") end
    return wrk.format("GET", "/blog/post-" .. n)
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
