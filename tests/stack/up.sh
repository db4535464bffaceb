#!/usr/bin/env bash
# Starts the local stack in DIR: etcd, kube-apiserver (RBAC, TLS, an admin client cert) and the
# AWS emulator, each on a free loopback port. Writes DIR/env (shell exports), DIR/kubeconfig and
# DIR/pids (what down.sh stops). With --watch-pid PID, a watchdog stops the stack when PID exits,
# so a test run that dies never leaves servers behind.
#
#   tests/stack/up.sh DIR [--watch-pid PID]
set -euo pipefail

dir=${1:?usage: up.sh DIR [--watch-pid PID]}
watch_pid=
[ "${2:-}" = "--watch-pid" ] && watch_pid=${3:?--watch-pid needs a pid}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${SAGEKEEPER_PYTHON:-$root/.venv/bin/python}
bin=$("$here/build-bins.sh")
# shellcheck source=tests/stack/lib.sh
source "$here/lib.sh"

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ -s "$dir/pids" ]; then
  echo "up.sh: $dir/pids exists; run down.sh $dir first" >&2
  exit 1
fi
: > "$dir/pids"
log() { echo "stack: $*" >&2; }
fail() {
  log "$1; last lines of $2:"
  tail -n 20 "$2" >&2 || true
  "$here/down.sh" "$dir" >/dev/null 2>&1 || true
  exit 1
}

free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}
read -r etcd_port peer_port api_port <<<"$(free_ports 3)"

# Certificates: one CA signs the serving cert (IP SAN for 127.0.0.1) and the admin client cert
# (group system:masters); a separate key signs service-account tokens. P-256 and PKCS#8 keys,
# which rustls and kube-rs accept.
pki="$dir/pki"
mkdir -p "$pki"
(
  cd "$pki"
  ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "$@"; }
  ec -x509 -days 7 -subj "/CN=sagekeeper-test-ca" -keyout ca.key -out ca.crt
  ec -subj "/CN=localhost" -keyout apiserver.key -out apiserver.csr
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -out apiserver.crt \
    -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth')
  ec -subj "/CN=admin/O=system:masters" -keyout admin.key -out admin.csr
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -out admin.crt \
    -extfile <(printf 'extendedKeyUsage=clientAuth')
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
) >"$dir/pki.log" 2>&1 || fail "certificate generation failed" "$dir/pki.log"

start() { # name, command...: starts in its own session, records the pid
  local name=$1
  shift
  setsid "$@" >"$dir/$name.log" 2>&1 </dev/null &
  record "$dir" $! "$name"
}

wait_for() { # name, seconds, check command...
  local name=$1 seconds=$2
  shift 2
  for _ in $(seq $((seconds * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "$name did not become ready in ${seconds}s" "$dir/$name.log"
}

start etcd "$bin/etcd" --name sagekeeper-test --data-dir "$dir/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "sagekeeper-test=http://127.0.0.1:$peer_port" \
  --unsafe-no-fsync=true --log-level=warn

# The emulator starts while etcd comes up; it picks its own port and reports it. IAM evaluation
# for every account: enforce unless SAGEKEEPER_IAM_EVALUATION says audit or off.
rm -f "$dir/emulator.port"
start emulator env PYTHONPATH="$root/tests/emulator" "$python" -m sagekeeper_emulator \
  --host 127.0.0.1 --port 0 --port-file "$dir/emulator.port" --iam-evaluation "${SAGEKEEPER_IAM_EVALUATION:-enforce}"

wait_for etcd 20 curl -sf "http://127.0.0.1:$etcd_port/health"

start kube-apiserver "$bin/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$etcd_port" --etcd-prefix=/registry \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
  --cert-dir="$pki" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --authorization-mode=RBAC --disable-admission-plugins=ServiceAccount \
  --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true \
  --service-account-issuer="https://127.0.0.1:$api_port/" \
  --service-account-key-file="$pki/sa.key" --service-account-signing-key-file="$pki/sa.key" \
  --v=0

b64() { base64 -w0 <"$1"; }
cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sagekeeper-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: sagekeeper-test
  context: {cluster: sagekeeper-test, user: admin}
current-context: sagekeeper-test
EOF
chmod 600 "$dir/kubeconfig"

curl_api() { curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "https://127.0.0.1:$api_port$1"; }
wait_for kube-apiserver 60 curl_api /readyz
wait_for kube-apiserver 20 curl_api /api/v1/namespaces/default
wait_for emulator 30 test -s "$dir/emulator.port"
emulator_port=$(cat "$dir/emulator.port")
wait_for emulator 10 curl -sf "http://127.0.0.1:$emulator_port/_emulator/health"

# The controller's own identity: an IAM user in the emulated account 123456789012, whose keys
# the emulator attributes to that account (AwsAccount roles trust it).
creds=$(curl -sf -X POST -H 'Content-Type: application/json' \
  -d '{"account": "123456789012", "userName": "sagekeeper"}' \
  "http://127.0.0.1:$emulator_port/_emulator/credentials") ||
  fail "could not create the controller's credentials" "$dir/emulator.log"
read -r key secret < <(python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["accessKeyId"], c["secretAccessKey"])' <<<"$creds")

{
  echo "# Written by tests/stack/up.sh: source it to use the local stack. The AWS keys are the"
  echo "# emulator's, for its account 123456789012; they mean nothing anywhere else."
  printf 'export KUBECONFIG=%q\n' "$dir/kubeconfig"
  printf 'export AWS_ENDPOINT_URL=%q\n' "http://127.0.0.1:$emulator_port"
  echo "export AWS_REGION=us-east-1"
  printf 'export AWS_ACCESS_KEY_ID=%q\n' "$key"
  printf 'export AWS_SECRET_ACCESS_KEY=%q\n' "$secret"
  echo "unset AWS_SESSION_TOKEN AWS_PROFILE"
  printf 'export PATH=%q:$PATH\n' "$bin"
} >"$dir/env"
chmod 600 "$dir/env"

if [ -n "$watch_pid" ]; then
  setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" "$3"' \
    watchdog "$watch_pid" "$here/down.sh" "$dir" >/dev/null 2>&1 </dev/null &
fi
log "up: kube-apiserver https://127.0.0.1:$api_port, AWS emulator http://127.0.0.1:$emulator_port ($dir/env)"
