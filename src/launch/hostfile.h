// Hosts for a multi-node job: an OpenMPI-style hostfile ("name [slots=N] [max_slots=N]",
// '#' comments), checked before anything starts, and the per-attempt hostfile the launcher
// hands to mpirun after leaving out bad hosts.
#pragma once
#include <string>
#include <vector>

namespace lt {

struct HostEntry {
  std::string name;
  int slots = 0;  // 0: not given
  int line = 0;   // in the user's hostfile (for messages)
};

// Parses `path`; throws naming the file and line for syntax errors, duplicates and an empty file.
std::vector<HostEntry> parse_hostfile(const std::string& path);

// Throws naming the host and line when a name does not resolve (getaddrinfo), when a host has
// fewer slots than `procs_per_node`, or (reachability, for hosts that are not this machine)
// when nothing answers on TCP port 22 within `timeout_s` — mpirun reaches other hosts over ssh.
void check_hosts(const std::vector<HostEntry>& hosts, const std::string& path, int procs_per_node,
                 bool probe_ssh, double timeout_s = 5);

// True when `name` resolves to an address of this machine (loopback or one of its interfaces).
bool is_local_host(const std::string& name);

// "name slots=N" lines, one per host, written atomically to `path`.
void write_hostfile(const std::string& path, const std::vector<std::string>& hosts, int slots);

}  // namespace lt
