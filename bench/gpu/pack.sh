#!/usr/bin/env bash
# Makes .gpu-bundle/ for bench/gpu/run.sh on a GPU machine without Node.js or network access: this
# machine's Node binary (xz), the built project (dist/) with its runtime npm packages (the `webgpu`
# package trimmed to its Linux x64 binary), and the Vulkan loader as Debian packages. Run it in the
# repo root on an x86-64 Linux machine after `npm ci`; copy the repo with .gpu-bundle/ over (about
# 30 MB; git ignores it), then run `bash bench/gpu/run.sh` there.
set -euo pipefail
cd "$(dirname "$0")/../.."
npx tsc -p tsconfig.json
rm -rf .gpu-bundle && mkdir -p .gpu-bundle/gl
xz -T2 -6 -c "$(readlink -f "$(command -v node)")" > .gpu-bundle/node.xz
(cd .gpu-bundle/gl && apt-get -o APT::Architecture=amd64 download libvulkan1 >/dev/null 2>&1) \
  || echo "pack: could not download libvulkan1; the GPU machine must have the Vulkan loader"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/node_modules"
# the runtime dependency tree (no dev packages), then only what the webgpu package loads on Linux x64
for p in $(npm ls --omit=dev --all --parseable 2>/dev/null | sed "s|^$PWD/||" | grep '^node_modules/'); do
  mkdir -p "$stage/$(dirname "$p")"
  [ "$p" = node_modules/webgpu ] || cp -r "$p" "$stage/$p"
done
[ -d node_modules/webgpu ] || { echo "pack: the optional package webgpu is not installed (npm install webgpu)"; exit 1; }
mkdir -p "$stage/node_modules/webgpu/dist/linux-x64"
cp node_modules/webgpu/package.json node_modules/webgpu/index.js "$stage/node_modules/webgpu/"
cp node_modules/webgpu/dist/linux-x64/dawn.node "$stage/node_modules/webgpu/dist/linux-x64/"
tar -cJf .gpu-bundle/app.tar.xz dist -C "$stage" node_modules
du -sh .gpu-bundle .gpu-bundle/*
