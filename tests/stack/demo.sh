#!/usr/bin/env bash
# `make demo`: the whole thing on the local stack. Starts a fresh stack in DIR, installs the CRDs,
# creates the example accounts' roles and organization in the AWS emulator, runs the controller,
# applies examples/ (the production stage is an Organizations OU of two accounts, through an
# AwsAccountSet), waits for the environment and the project, approves a model version and promotes it
# through staging and (one field) production, and shows `kubectl get sagekeeper -A`. Ctrl-C (or
# `make demo-down` later) stops the controller and the stack.
#
#   tests/stack/demo.sh DIR
set -euo pipefail

dir=${1:?usage: demo.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${SAGEKEEPER_PYTHON:-$root/.venv/bin/python}
sagekeeper=${CARGO_TARGET_DIR:-$root/target}/debug/sagekeeper
# shellcheck source=tests/stack/lib.sh
source "$here/lib.sh"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

"$here/down.sh" "$dir" 2>/dev/null || true
trap '"$here/down.sh" "$dir"; exit 130' INT TERM
say "starting the local stack (kube-apiserver, etcd, AWS emulator)"
"$here/up.sh" "$dir"
# shellcheck disable=SC1091
source "$dir/env"

say "installing the CRDs"
kubectl apply --server-side -f "$root/crds/"
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
for _ in $(seq 60); do
  [ "$(kubectl api-resources --api-group=sagekeeper.io -o name | wc -l)" = 5 ] && break
  sleep 0.5
done

say "installing deploy/kubernetes/ (the controller's namespace, ServiceAccount and RBAC, the approval gate)"
kubectl apply --server-side -f "$root/deploy/kubernetes/"

say "creating the permissions boundary and the role sagekeeper assumes in each emulated account, and the organization"
ou=$("$python" "$here/seed-demo.py" | tail -n 1)

say "starting the controller as its ServiceAccount (log: $dir/sagekeeper.log)"
# No kubelet runs pods here: the controller runs as a local process, and the admin user
# impersonates the ServiceAccount for it, so the shipped RBAC decides what it may do.
kubectl config view --raw -o json | "$python" -c '
import json, sys
config = json.load(sys.stdin)
for user in config["users"]:
    user["user"]["as"] = "system:serviceaccount:sagekeeper-system:sagekeeper"
json.dump(config, sys.stdout)' >"$dir/controller.kubeconfig"
KUBECONFIG="$dir/controller.kubeconfig" setsid "$sagekeeper" run --lease-namespace=sagekeeper-system --metrics-addr=127.0.0.1:0 --poll-interval-seconds=5 \
  >"$dir/sagekeeper.log" 2>&1 </dev/null &
record "$dir" $! sagekeeper

say "applying examples/ (the emulator's organization unit $ou in the account set)"
for file in "$root"/examples/*.yaml; do
  sed "s/ou-ab12-cdef3456/$ou/" "$file" | kubectl apply -f -
done

# dev, staging, the organization account, and the set's two production accounts.
accounts=5
say "waiting for the accounts to be Ready (the account set makes one for each account of the production OU)"
for _ in $(seq 90); do
  ready=$(kubectl get awsaccounts -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)
  [ "$ready" = "$accounts" ] && break
  sleep 1
done
kubectl get awsaccountsets,awsaccounts
env_ready=0
if [ "$ready" = "$accounts" ]; then
  say "waiting for the environment to converge in its four accounts"
  kubectl wait --for=condition=Ready dse --all -n team-fraud --timeout=240s >/dev/null && env_ready=1
fi
project_ready=0
if [ "$env_ready" = 1 ]; then
  say "waiting for the project's registry, pipeline and first run"
  kubectl wait --for=condition=Ready mlp --all -n team-fraud --timeout=120s >/dev/null && project_ready=1
fi
deployment_ready=0
if [ "$project_ready" = 1 ]; then
  group=$(kubectl get mlp churn -n team-fraud -o jsonpath='{.status.modelPackageGroupName}')
  version=$("$python" "$here/seed-demo.py" approve "$group")
  say "model v$version registered and approved in $group: staging deploys it, production waits for a person"
  if kubectl wait --for=condition=PromotionPending mdep/churn -n team-fraud --timeout=120s >/dev/null \
    && kubectl wait --for=condition=Ready mdep/churn -n team-fraud --timeout=120s >/dev/null; then
    kubectl get mdep churn -n team-fraud -o jsonpath='{range .status.stages[*]}{"  "}{.name}: {.phase} {.message}{"\n"}{end}'
    say "promoting v$version to production: one field, as a GitOps commit would set it"
    kubectl patch mdep churn -n team-fraud --type=json \
      -p "[{\"op\": \"add\", \"path\": \"/spec/stages/1/approvedVersion\", \"value\": \"$version\"}]" >/dev/null
    kubectl wait --for=condition=PromotionPending=False mdep/churn -n team-fraud --timeout=120s >/dev/null \
      && kubectl wait --for=condition=Ready mdep/churn -n team-fraud --timeout=120s >/dev/null && deployment_ready=1
  fi
fi
kubectl get sagekeeper -A
echo
kubectl get dse -n team-fraud -o jsonpath='{range .items[*]}environment {.metadata.name}:{"\n"}{range .status.conditions[*]}{"  "}{.type}={.status} {.reason}{"\n"}{end}{end}'
echo
kubectl get dse,mlp,mdep -n team-fraud \
  -o custom-columns='KIND:.kind,NAME:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,REASON:.status.conditions[?(@.type=="Ready")].reason,MESSAGE:.status.conditions[?(@.type=="Ready")].message'
if [ "$ready" = "$accounts" ]; then
  say "sagekeeper trace dse/fraud -n team-fraud (or kubectl sagekeeper trace, with the binary on PATH as kubectl-sagekeeper)"
  "$sagekeeper" trace dse/fraud -n team-fraud
fi
if [ "$ready" != "$accounts" ]; then
  echo "the accounts did not become Ready; see $dir/sagekeeper.log" >&2
  exit 1
fi
if [ "$env_ready" != 1 ]; then
  echo "the environment did not become Ready; see kubectl describe dse -n team-fraud and $dir/sagekeeper.log" >&2
  exit 1
fi
if [ "$project_ready" != 1 ]; then
  echo "the project did not become Ready; see kubectl describe mlp -n team-fraud and $dir/sagekeeper.log" >&2
  exit 1
fi
if [ "$deployment_ready" != 1 ]; then
  echo "the deployment did not serve in both stages; see kubectl describe mdep -n team-fraud and $dir/sagekeeper.log" >&2
  exit 1
fi

echo
echo "The stack and the controller keep running: source $dir/env to use kubectl; make demo-down stops them."
if [ -t 0 ]; then
  trap '"$here/down.sh" "$dir"; exit 0' INT TERM
  echo "Watching (Ctrl-C stops the demo and cleans up)..."
  while sleep 5; do
    echo
    kubectl get sagekeeper -A
  done
fi
trap - INT TERM
