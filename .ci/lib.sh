# Shell helpers shared by the CI checks that start the real groupd binary.
# Source it; it defines functions only.

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Whether something accepts connections on 127.0.0.1:$1.
port_answers() {
  python3 -c '
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
except OSError:
    sys.exit(1)
' "$1"
}

# Waits up to 30 s for port $1 while process $2 lives; `fail`s otherwise.
wait_for_port() {
  for _ in $(seq 60); do
    port_answers "$1" && return 0
    kill -0 "$2" 2>/dev/null || fail "groupd exited before listening on port $1"
    sleep 0.5
  done
  port_answers "$1" || fail "groupd did not listen on port $1 within 30 s"
}

# Sends SIGTERM to process $1 (a child of this shell) and waits up to 10 s
# for it to exit, then SIGKILL. Sets `stopped_status` to its exit status.
# Not to be called in a subshell: only the parent can wait for a child.
stop_process() {
  local pid=$1 status=0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || status=$?
  stopped_status=$status
}

# Reads one dotted field from the JSON on stdin, e.g. `json_field id`.
json_field() {
  python3 -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value.get(key, "") if isinstance(value, dict) else ""
print(value)
' "$1"
}
