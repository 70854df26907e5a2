#!/bin/sh
# Stands in for ssh in launch_exclude_test.sh: mpirun "reaches" hosts 127.0.0.x through this
# agent (--mca plm_rsh_agent), which runs the remote command on this machine. So a hostfile
# of several hosts runs on one machine, each host with its own orted. Each "host" gets its
# own TMPDIR (under $LT_FAKE_SSH_TMP): OpenMPI's session directories would collide otherwise.
host="$1"
shift
export TMPDIR="${LT_FAKE_SSH_TMP:-/tmp}/host-$host"
mkdir -p "$TMPDIR"
exec sh -c "$*"
