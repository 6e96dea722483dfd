-- Shared by cached.lua and churn.lua: counts responses by status class in every wrk thread and prints the totals.
-- Loaded with dofile; defines wrk's response() and done() hooks and counts_init() for the script's init().
threads = {}
function counts_init()
    ok, s4xx, s5xx = 0, 0, 0
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
