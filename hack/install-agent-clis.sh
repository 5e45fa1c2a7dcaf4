#!/usr/bin/env bash
# Installs the coding-agent CLIs pinned in hack/agent-clis.txt from the npm registry into a
# cache folder, once. Idempotent: a folder whose stamp is complete is reused, so a second
# call returns at once; the folder's name carries a hash of the pins (and of layout, below),
# so changing a version installs afresh beside the old one.
#
#   hack/install-agent-clis.sh
#
# Prints the folder's bin/ (one symlink per CLI: claude, codex, opencode, gemini, cline)
# on stdout; test/runtimes puts it on the agentlet's PATH. Needs node and npm, which it
# installs from Debian's packages when they are missing. Each CLI gets its own prefix, so
# their dependency trees never meet. npm runs the packages' install scripts: Claude Code, OpenCode and Cline link their
# native binary in postinstall.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pins=$root/hack/agent-clis.txt
# layout: bump it when a change to this script must reinstall (the folder's shape changes).
layout=1
hash=$( (echo "layout $layout"; grep -Ev '^[[:space:]]*(#|$)' "$pins") | sha256sum | cut -c1-12)
cache=${EXO_AGENT_CLI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/exo-in-go/agent-clis-$hash}
stamp=$cache/.stamp

if [[ -f $stamp ]]; then
  echo "$cache/bin"
  exit 0
fi
if ! command -v npm >/dev/null; then
  # Debian's packages, as hack/install-nginx.sh does for nginx.
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "install-agent-clis: need npm, or root or sudo to apt-get install nodejs npm" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [[ -f $stamp ]]; then # installed by a concurrent call while this one waited
  echo "$cache/bin"
  exit 0
fi

# The pins, without comments: "binary package version" per line.
mapfile -t lines < <(grep -Ev '^[[:space:]]*(#|$)' "$pins")
echo "installing ${#lines[@]} agent CLIs from the npm registry into $cache (first time only, a few minutes)" >&2

# npm is network- and disk-bound, so the installs run side by side; each logs to its own file.
pids=()
for line in "${lines[@]}"; do
  read -r bin pkg version <<<"$line"
  rm -rf "${cache:?}/$bin"
  mkdir -p "$cache/$bin"
  npm install --prefix "$cache/$bin" --no-audit --no-fund --no-update-notifier --loglevel=warn \
    "$pkg@$version" >"$cache/$bin.log" 2>&1 &
  pids+=("$!")
done
failed=0
for i in "${!lines[@]}"; do
  read -r bin pkg version <<<"${lines[$i]}"
  if ! wait "${pids[$i]}"; then
    echo "install-agent-clis: npm install $pkg@$version failed:" >&2
    cat "$cache/$bin.log" >&2
    failed=1
  fi
done
[[ $failed -eq 0 ]] || exit 1

mkdir -p "$cache/bin"
for line in "${lines[@]}"; do
  read -r bin pkg version <<<"$line"
  target=$cache/$bin/node_modules/.bin/$bin
  [[ -x $target ]] || { echo "install-agent-clis: $pkg@$version installed no $bin" >&2; exit 1; }
  # The installed version must be the pinned one: a postinstall that failed quietly
  # leaves a launcher that cannot start its native binary, which --version catches too.
  got=$(timeout 60 "$target" --version 2>/dev/null </dev/null | head -n1) || true
  [[ $got == *"$version"* ]] || { echo "install-agent-clis: $bin --version printed \"$got\", want $version" >&2; exit 1; }
  ln -sfn "$target" "$cache/bin/$bin"
done
printf '%s\n' "${lines[@]}" >"$stamp"
echo "$cache/bin"
