#!/usr/bin/env bash
# Stops exactly the processes up.sh started in DIR (by the pids it recorded, each checked to
# still be the process it started), then removes DIR's state. Safe to run twice.
#
#   tests/stack/down.sh DIR
set -uo pipefail

dir=${1:?usage: down.sh DIR}
[ -f "$dir/pids" ] || exit 0

ours() { # pid, name: true while pid still runs the program up.sh started under that name
  local cmd
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
  case $2 in
    emulator) [[ $cmd == *sagekeeper_emulator* ]] ;;
    *) [[ $cmd == *"$2"* ]] ;;
  esac
}

# Stop in reverse start order (the API server before etcd), then give all of them five seconds
# together before killing what is left.
mapfile -t entries < <(tac "$dir/pids")
for entry in "${entries[@]}"; do
  read -r pid name <<<"$entry"
  # Each was started with setsid, so its pid is its process group: signal the whole group.
  ours "$pid" "$name" && kill -TERM -- "-$pid" 2>/dev/null
done
for _ in $(seq 50); do
  alive=0
  for entry in "${entries[@]}"; do
    read -r pid name <<<"$entry"
    ours "$pid" "$name" && alive=1
  done
  [ "$alive" = 0 ] && break
  sleep 0.1
done
for entry in "${entries[@]}"; do
  read -r pid name <<<"$entry"
  ours "$pid" "$name" && kill -KILL -- "-$pid" 2>/dev/null
done

rm -rf "$dir/pids" "$dir/etcd" "$dir/emulator.port"
echo "stack: down ($dir)" >&2
