#!/usr/bin/env bash
# Writes an OCI image archive of busybox (from Debian's busybox-static) to stdout, so a
# container can be run without a registry:
#   scripts/busybox-image.sh | ctr -a /run/berth/berth.sock images import --base-name docker.io/library/busybox -
# Needs umoci and busybox-static (scripts/install-deps.sh installs both).
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
umoci init --layout oci >/dev/null
umoci new --image oci:latest >/dev/null
umoci unpack --rootless --image oci:latest bundle >/dev/null 2>&1
mkdir -p bundle/rootfs/bin
cp /bin/busybox bundle/rootfs/bin/busybox
# Every applet as a link, as busybox images have them.
for applet in $(bundle/rootfs/bin/busybox --list); do
  [ -e "bundle/rootfs/bin/$applet" ] || ln -s busybox "bundle/rootfs/bin/$applet"
done
umoci config --image oci:latest --config.cmd sh >/dev/null
umoci repack --image oci:latest bundle >/dev/null
tar -C oci -cf - .
