#!/bin/sh
# Stands in for ssh in launch_exclude_test.sh: mpirun "reaches" hosts 127.0.0.x through this
# agent (--mca plm_rsh_agent), which runs the remote command on this machine. So a hostfile
# of several hosts runs on one machine, each host with its own orted.
shift
exec sh -c "$*"
