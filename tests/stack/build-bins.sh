#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd for the local stack, helm for the chart tests and
# promtool for the alert rule tests, from the official Go modules pinned in
# tests/stack/{k8s,etcd,helm,promtool}/go.mod, and the image tool (tools/image, on
# go-containerregistry), into a cache folder outside the work tree.
# A second run finds the binaries and returns at once. Prints the bin folder.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(grep -oE 'k8s.io/kubernetes v[0-9.]+' "$here/k8s/go.mod" | cut -d' ' -f2)
promtool_version=$(grep -oE 'github.com/prometheus/prometheus v[0-9.]+' "$here/promtool/go.mod" | cut -d' ' -f2)
helm_version=$(grep -oE 'helm.sh/helm/v4 v[0-9.]+' "$here/helm/go.mod" | cut -d' ' -f2)
etcd_version=$(grep -oE 'go.etcd.io/etcd/server/v3 v[0-9.]+' "$here/etcd/go.mod" | cut -d' ' -f2)
cache=${SAGEKEEPER_CACHE:-$HOME/.cache/sagekeeper}
bin="$cache/bin/k8s-$k8s_version-etcd-$etcd_version"
mkdir -p "$bin"

# readonly: the committed go.mod and go.sum pin everything; a build never rewrites them.
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0

build_k8s() {
  local name=$1 minor
  [ -x "$bin/$name" ] && return 0
  minor=$(echo "$k8s_version" | cut -d. -f2)
  echo "building $name $k8s_version (several minutes on a cold cache)" >&2
  (cd "$here/k8s" && go build -trimpath -pgo=off -o "$bin/$name.tmp" \
    -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=$k8s_version \
      -X k8s.io/component-base/version.gitMajor=1 \
      -X k8s.io/component-base/version.gitMinor=$minor \
      -X k8s.io/component-base/version.gitTreeState=clean \
      -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version \
      -X k8s.io/client-go/pkg/version.gitMajor=1 \
      -X k8s.io/client-go/pkg/version.gitMinor=$minor" \
    "k8s.io/kubernetes/cmd/$name")
  mv "$bin/$name.tmp" "$bin/$name"
}

build_etcd() {
  [ -x "$bin/etcd" ] && return 0
  echo "building etcd $etcd_version" >&2
  (cd "$here/etcd" && go build -trimpath -o "$bin/etcd.tmp" \
    -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$etcd_version" \
    go.etcd.io/etcd/server/v3)
  mv "$bin/etcd.tmp" "$bin/etcd"
}

# helm under its version (the folder is named after k8s and etcd only), linked as `helm`.
build_helm() {
  [ -x "$bin/helm-$helm_version" ] && [ "$(readlink "$bin/helm")" = "helm-$helm_version" ] && return 0
  if [ ! -x "$bin/helm-$helm_version" ]; then
    echo "building helm $helm_version" >&2
    (cd "$here/helm" && go build -trimpath -o "$bin/helm-$helm_version.tmp" \
      -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version" \
      helm.sh/helm/v4/cmd/helm)
    mv "$bin/helm-$helm_version.tmp" "$bin/helm-$helm_version"
  fi
  ln -sfn "helm-$helm_version" "$bin/helm"
}

# promtool likewise, for the alert rule tests.
build_promtool() {
  [ -x "$bin/promtool-$promtool_version" ] && [ "$(readlink "$bin/promtool")" = "promtool-$promtool_version" ] && return 0
  if [ ! -x "$bin/promtool-$promtool_version" ]; then
    echo "building promtool $promtool_version" >&2
    (cd "$here/promtool" && go build -trimpath -o "$bin/promtool-$promtool_version.tmp" -ldflags "-s -w" \
      github.com/prometheus/prometheus/cmd/promtool)
    mv "$bin/promtool-$promtool_version.tmp" "$bin/promtool-$promtool_version"
  fi
  ln -sfn "promtool-$promtool_version" "$bin/promtool"
}

# The image tool (tools/image), under a hash of its sources.
build_image_tool() {
  local root key
  root=$(cd "$here/../.." && pwd)
  key=$(cat "$root/tools/image/main.go" "$root/tools/image/go.sum" | sha256sum | cut -c1-12)
  if [ ! -x "$bin/image-$key" ]; then
    echo "building the image tool" >&2
    (cd "$root/tools/image" && go build -trimpath -o "$bin/image-$key.tmp" -ldflags "-s -w" .)
    mv "$bin/image-$key.tmp" "$bin/image-$key"
  fi
  ln -sfn "image-$key" "$bin/image"
}

build_etcd
build_helm
build_promtool
build_image_tool
build_k8s kube-apiserver
build_k8s kubectl
echo "$bin"
