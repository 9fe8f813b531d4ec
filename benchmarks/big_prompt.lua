-- distinct ~100 KB prompts: a counter makes each one new (no tokenizer cache hits)
local filler = string.rep("The quick brown fox jumps over the lazy dog. ", 2300)
local n = 0
request = function()
  n = n + 1
  local body = '{"model":"mock-gpt","max_tokens":16,"messages":[{"role":"user","content":"' .. n .. ' ' .. math.random() .. ' ' .. filler .. '"}]}'
  return wrk.format("POST", nil, {["Content-Type"]="application/json", ["authorization"]="Bearer sk-bench-key-0123456789abcdef"}, body)
end
