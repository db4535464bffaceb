#!/usr/bin/env bash
# Stops exactly the processes up.sh started in DIR (by the pids it recorded, each checked to
# still be the process it started), then removes DIR's state. Safe to run twice.
#
#   tests/stack/down.sh DIR
set -uo pipefail

dir=${1:?usage: down.sh DIR}
[ -f "$dir/pids" ] || exit 0
# shellcheck source=tests/stack/lib.sh
source "$(dirname "$0")/lib.sh"

# Stop in reverse start order (the controller and API server before etcd), then give all of
# them five seconds together before killing what is left.
mapfile -t entries < <(tac "$dir/pids")
for entry in "${entries[@]}"; do
  read -r pid _ start <<<"$entry"
  # Each was started as its own process group leader: signal the whole group.
  ours "$pid" "$start" && kill -TERM -- "-$pid" 2>/dev/null
done
for _ in $(seq 50); do
  alive=0
  for entry in "${entries[@]}"; do
    read -r pid _ start <<<"$entry"
    ours "$pid" "$start" && alive=1
  done
  [ "$alive" = 0 ] && break
  sleep 0.1
done
for entry in "${entries[@]}"; do
  read -r pid _ start <<<"$entry"
  ours "$pid" "$start" && kill -KILL -- "-$pid" 2>/dev/null
done

rm -rf "$dir/pids" "$dir/etcd" "$dir/emulator.port"
echo "stack: down ($dir)" >&2
