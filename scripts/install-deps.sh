#!/usr/bin/env bash
# Installs the Debian packages Berth's build and tests need. Idempotent; run as root.
#   libsqlite3-dev  SQLite, under the metadata store
#   containerd      its `ctr` client drives berthd in the tests; its daemon is the benchmark anchor
#   gcc             builds the C example plugin and the loader's test fixtures
#   python3         runs the benchmark scripts
#   zlib1g-dev      zlib, with which the differ plugin writes gzip layers
#   umoci, busybox-static  build the OCI image the image tests import, offline
#   docker-registry, skopeo  a local registry, seeded, for ctr content fetch/fetch-object/push-object
#   python3-h2      an HTTP/2 client that sends the frames ctr never does (Tests/Fixtures/http2_edges.py)
#   libseccomp-dev, libcap-dev  seccomp filters and capabilities in the container keeper (Helpers/keeper)
#   runc            the OCI runtime the keeper drives in its "oci" mode (tested by Tests/Keeper)
set -euo pipefail
packages=(libsqlite3-dev containerd gcc python3 zlib1g-dev umoci busybox-static docker-registry skopeo python3-h2
          libseccomp-dev libcap-dev runc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
