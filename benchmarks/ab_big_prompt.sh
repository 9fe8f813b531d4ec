#!/bin/bash
# Gateway CPU per request for distinct ~100 KB prompts (benchmarks/big_prompt.lua: a counter makes
# every prompt new, so no token-count cache helps), two checkouts in alternating windows, each pinned
# to CPU 1 with benchmarks/bench-config.yaml (metering, SQLite ledger, budgets, rate limits).
# usage: git worktree add /tmp/before <commit>; benchmarks/ab_big_prompt.sh /tmp/before <rounds> <seconds>
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
WORK=$(mktemp -d)
BEFORE=$1; ROUNDS=$2; SECS=$3
export BENCH_KEY=sk-bench-key-0123456789abcdef BENCH_PROVIDER_KEY=sk-up UPSTREAM_URL=http://127.0.0.1:18091/v1
python3 $HERE/mock_upstream.py 18091 > $WORK/mock.log 2>&1 &
MOCK=$!
sleep 1
run() {  # $1 label, $2 root
  local root=$2
  (cd $WORK && PYTHONPATH=$root taskset -c 1 $ROOT/.venv/bin/switchyard serve --config $root/benchmarks/bench-config.yaml --port 18092 --log-level warning > $WORK/gw-$1.log 2>&1 &)
  for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18092/healthz && break; sleep 0.2; done
  local pid=$(pgrep -f "serve --config $root/benchmarks/bench-config.yaml --port 18092" | head -1)
  taskset -c 0 wrk -t1 -c16 -d2s -s $HERE/big_prompt.lua http://127.0.0.1:18092/v1/chat/completions > /dev/null 2>&1
  local t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  local out=$(taskset -c 0 wrk -t1 -c16 -d${SECS}s -s $HERE/big_prompt.lua http://127.0.0.1:18092/v1/chat/completions 2>&1)
  local t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  local reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  local non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  kill $pid; sleep 1
  echo "$1 reqs=$reqs non2xx=${non2xx:-0} cpu_ms_per_req=$(python3 -c "print(round(($t1-$t0)*10/$reqs,3))")"
}
for r in $(seq $ROUNDS); do
  run before $BEFORE
  run after $ROOT
done
kill $MOCK
