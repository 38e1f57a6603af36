#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Download the Debian sources that rdma-tests/build.sh patches (rdma-core and
# perftest) into the build root $1, at /usr/src/vela-src. The mirror serves
# the source tarballs but not every .dsc, so the files are fetched one by one
# with apt-helper, which checks each against the hash in the Sources index.
set -eu
root=$1
mkdir -p "$root/usr/src/vela-src"
chroot "$root" sh -euc '
	cd /usr/src/vela-src
	apt-get source -qq --print-uris rdma-core perftest >uris
	grep -v "\.dsc'"'"' " uris | while read -r uri name size hash; do
		uri=${uri#\'"'"'}; uri=${uri%\'"'"'}
		/usr/lib/apt/apt-helper download-file "$uri" "$name" "$hash" >/dev/null
	done
	rm uris
	ls
'
