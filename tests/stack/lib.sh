# Shared by up.sh, down.sh and demo.sh: recording and recognising the processes a stack started.
# Each pid is recorded with its start time (field 22 of /proc/PID/stat), so a pid the kernel
# reused for someone else's process is never taken for ours.

start_time() { # pid
  local stat
  stat=$(cat 2>/dev/null "/proc/$1/stat") || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  echo "${20}"
}

record() { # dir pid name
  echo "$2 $3 $(start_time "$2")" >>"$1/pids"
}

ours() { # pid start-time
  [ -n "${2:-}" ] && [ "$(start_time "$1")" = "$2" ]
}
