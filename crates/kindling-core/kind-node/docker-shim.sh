#!/usr/bin/env bash
# Written by kindling, first on kind's PATH, when this engine refuses
# `--privileged` (`unable to apply caps: operation not permitted`: the
# engine itself lacks a capability, CAP_SYS_RESOURCE here).
#
# - `docker run|create ... --privileged ...`: --privileged is replaced by
#   every capability but CAP_SYS_RESOURCE, seccomp, AppArmor and system
#   paths unconfined, and a device cgroup rule allowing every device.
#   kindling's node image then remounts the cgroup hierarchies read-write
#   and creates /dev/kmsg, what --privileged did that these flags do not.
# - `docker exec --privileged ...`: --privileged is dropped (the command
#   gets the container's capabilities).
# Everything else goes to the real docker unchanged.
set -euo pipefail
real=@REAL_DOCKER@
if [ $# -gt 0 ] && { [ "$1" = run ] || [ "$1" = create ] || [ "$1" = exec ]; }; then
  command=$1
  shift
  args=("$command")
  for arg in "$@"; do
    # kind puts every option before the image and never passes
    # `--privileged` as an argument of a node's command.
    if [ "$arg" = --privileged ] || [ "$arg" = --privileged=true ]; then
      if [ "$command" != exec ]; then
        args+=(@UNPRIVILEGED@)
      fi
      continue
    fi
    args+=("$arg")
  done
  exec "$real" "${args[@]}"
fi
exec "$real" "$@"
