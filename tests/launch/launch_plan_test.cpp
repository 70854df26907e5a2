// The launcher's pure parts: durations, hostfiles, leaving out bad hosts. Expected values are
// worked out by hand from the rules in launch/job_plan.h (ranks fill hosts in order).
#include <gtest/gtest.h>

#include <algorithm>

#include <fstream>

#include "core/error.h"
#include "launch/duration.h"
#include "launch/hostfile.h"
#include "launch/job_plan.h"
#include "launch/slurm.h"
#include "test_util.h"

namespace lt {
namespace {

TEST(LaunchDuration, Units) {
  EXPECT_DOUBLE_EQ(parse_duration("2d", "x"), 2 * 86400);
  EXPECT_DOUBLE_EQ(parse_duration("36h", "x"), 36 * 3600);
  EXPECT_DOUBLE_EQ(parse_duration("90m", "x"), 5400);
  EXPECT_DOUBLE_EQ(parse_duration("3600s", "x"), 3600);
  EXPECT_DOUBLE_EQ(parse_duration("3600", "x"), 3600);
  EXPECT_DOUBLE_EQ(parse_duration("1h30m", "x"), 5400);
  EXPECT_DOUBLE_EQ(parse_duration("1.5h", "x"), 5400);
}

TEST(LaunchDuration, BadInputNamesTheOption) {
  for (const char* bad : {"", "2x", "-5s", "abc", "0", "0s", "h", "1h30", "2 d", "1e5s"}) {
    try {
      parse_duration(bad, "--max-run");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--max-run"), std::string::npos) << e.what();
    }
  }
}

std::string write_text(const std::string& name, const std::string& text) {
  auto dir = test::scratch_dir("launch_" + name);
  std::string path = (dir / "hosts").string();
  std::ofstream(path) << text;
  return path;
}

TEST(LaunchHostfile, Parses) {
  auto path = write_text("hf_ok", "# cluster\nnode1 slots=32\n\nnode2   slots=32 max_slots=64  # spare\nnode3\n");
  auto h = parse_hostfile(path);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].name, "node1");
  EXPECT_EQ(h[0].slots, 32);
  EXPECT_EQ(h[1].line, 4);
  EXPECT_EQ(h[2].slots, 0);
}

TEST(LaunchHostfile, Errors) {
  EXPECT_THROW(parse_hostfile(write_text("hf_dup", "a slots=1\na slots=1\n")), Error);
  EXPECT_THROW(parse_hostfile(write_text("hf_empty", "# nothing\n")), Error);
  EXPECT_THROW(parse_hostfile(write_text("hf_field", "a cores=4\n")), Error);
  EXPECT_THROW(parse_hostfile(write_text("hf_slots", "a slots=x\n")), Error);
  auto path = write_text("hf_unknown", "localhost slots=4\nno-such-host.invalid slots=4\n");
  try {
    check_hosts(parse_hostfile(path), path, 4, false);
    ADD_FAILURE() << "unknown host accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2: unknown host 'no-such-host.invalid'"), std::string::npos) << e.what();
  }
  auto few = write_text("hf_few", "localhost slots=2\n");
  EXPECT_THROW(check_hosts(parse_hostfile(few), few, 4, false), Error);
  EXPECT_NO_THROW(check_hosts(parse_hostfile(few), few, 2, true));  // local: no ssh probe
  EXPECT_TRUE(is_local_host("localhost"));
}

RunConfig tiny_config(int gbs) {
  return load_run_config("", {"model=stories260k", "data.path=x", "train.steps=1", "train.seq_len=32",
                              "parallel.tp=2", "parallel.pp=2", "train.global_batch_size=" + std::to_string(gbs)});
}

Placement four_nodes(int spares) {
  Placement p;
  p.nodes = 4;
  p.procs_per_node = 4;
  p.hosts = {"n0", "n1", "n2", "n3"};
  for (int i = 0; i < spares; ++i) p.spares.push_back("s" + std::to_string(i));
  return p;
}

TEST(LaunchExclude, RanksToHosts) {
  Placement p = four_nodes(0);
  EXPECT_EQ(hosts_of_ranks(p, {0, 3, 5, 15}), (std::vector<std::string>{"n0", "n1", "n3"}));
}

TEST(LaunchExclude, SpareReplacesBadHost) {
  Placement q = exclude_hosts(four_nodes(1), {"n2"}, tiny_config(16));
  EXPECT_EQ(q.hosts, (std::vector<std::string>{"n0", "n1", "n3", "s0"}));
  EXPECT_EQ(q.world(), 16);
  EXPECT_TRUE(q.spares.empty());
}

TEST(LaunchExclude, FewerReplicasSameGlobalBatch) {
  // 16 ranks, tp2 pp2 -> dp 4; without n1: 12 ranks -> dp 3; gbs 12 = 3 replicas x 4.
  Placement q = exclude_hosts(four_nodes(0), {"n1"}, tiny_config(12));
  EXPECT_EQ(q.hosts, (std::vector<std::string>{"n0", "n2", "n3"}));
  EXPECT_EQ(check_layout(q, tiny_config(12)).dp, 3);
  EXPECT_EQ(check_layout(q, tiny_config(12)).micro_batches, 4);
  // Two hosts gone: dp 2, gbs 12 -> 6 micro-batches each.
  Placement r = exclude_hosts(four_nodes(0), {"n1", "n3"}, tiny_config(12));
  EXPECT_EQ(check_layout(r, tiny_config(12)).micro_batches, 6);
}

TEST(LaunchExclude, SaysWhyWhenTheLayoutNoLongerFits) {
  // gbs 16 over dp 3 does not divide.
  try {
    exclude_hosts(four_nodes(0), {"n1"}, tiny_config(16));
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot continue without host(s) n1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(exclude_hosts(four_nodes(0), {"n0", "n1", "n2", "n3"}, tiny_config(16)), Error);
  Placement alone;  // no hostfile: nothing to exclude
  alone.procs_per_node = 4;
  EXPECT_THROW(exclude_hosts(alone, {"me"}, tiny_config(4)), Error);
}

TEST(LaunchSlurm, Hostlists) {
  EXPECT_EQ(expand_hostlist("node[01-03,07],gpu-[1-2],login"),
            (std::vector<std::string>{"node01", "node02", "node03", "node07", "gpu-1", "gpu-2", "login"}));
  EXPECT_EQ(expand_hostlist("n[8-10]x"), (std::vector<std::string>{"n8x", "n9x", "n10x"}));
  EXPECT_EQ(expand_hostlist("vm"), std::vector<std::string>{"vm"});
  for (const char* bad : {"n[1-", "n[3-1]", "n[a-b]", "n1]", "a,,b"}) EXPECT_THROW(expand_hostlist(bad), Error) << bad;
  EXPECT_EQ(expand_tasks_per_node("4(x2),3"), (std::vector<int>{4, 4, 3}));
  EXPECT_THROW(expand_tasks_per_node("x"), Error);
}

TEST(LaunchSlurm, TimeLeft) {
  EXPECT_EQ(parse_slurm_time("45"), 45 * 60);  // minutes
  EXPECT_EQ(parse_slurm_time("3:04"), 3 * 60 + 4);
  EXPECT_EQ(parse_slurm_time("2:03:04"), 2 * 3600 + 3 * 60 + 4);
  EXPECT_EQ(parse_slurm_time("1-02:03:04"), 86400 + 2 * 3600 + 3 * 60 + 4);
  EXPECT_EQ(parse_slurm_time("1-02"), 86400 + 2 * 3600);
  EXPECT_EQ(parse_slurm_time("1-02:03"), 86400 + 2 * 3600 + 3 * 60);
  for (const char* none : {"UNLIMITED", "NOT_SET", "INVALID", "", "soon", "1:2:3:4"})
    EXPECT_EQ(parse_slurm_time(none), -1) << none;
}

// Under Slurm every step is an srun on exactly the placement's nodes: after the health check
// names a bad node, the next srun's --nodelist leaves it out and a spare of the allocation
// takes its place; ranks fill the nodes in order (--distribution=block).
TEST(LaunchSlurm, SrunOnTheNodesLeft) {
  Placement p = four_nodes(1);
  p.slurm = true;
  LaunchOptions o;
  o.srun_args = "--overcommit";
  auto a = srun_prefix(o, p);
  auto has = [](const std::vector<std::string>& v, const std::string& w) { return std::find(v.begin(), v.end(), w) != v.end(); };
  EXPECT_EQ(a[0], "srun");
  EXPECT_TRUE(has(a, "--ntasks=16"));
  EXPECT_TRUE(has(a, "--ntasks-per-node=4"));
  EXPECT_TRUE(has(a, "--nodelist=n0,n1,n2,n3"));
  EXPECT_TRUE(has(a, "--distribution=block"));
  EXPECT_TRUE(has(a, "--overcommit"));
  EXPECT_EQ(launch_prefix(o, p, "hosts")[0], "srun");
  Placement q = exclude_hosts(p, hosts_of_ranks(p, {9}), tiny_config(16));
  EXPECT_TRUE(q.slurm);
  EXPECT_TRUE(has(srun_prefix(o, q), "--nodelist=n0,n1,n3,s0"));
  EXPECT_FALSE(oversubscribes(o, q));
  p.slurm = false;
  EXPECT_EQ(launch_prefix(o, p, "hosts")[0], "mpirun");
}

// A laptop: more ranks than cores and no hostfile oversubscribes on its own; a hostfile, enough
// cores or placement options of the user's own do not.
TEST(LaunchLaptop, OversubscribesWhenRanksExceedCores) {
  LaunchOptions o;
  o.local_cores = 2;
  Placement alone;
  alone.procs_per_node = 4;
  auto has = [](const std::vector<std::string>& a, const char* w) { return std::find(a.begin(), a.end(), w) != a.end(); };
  EXPECT_TRUE(oversubscribes(o, alone));
  std::vector<std::string> a = mpirun_prefix(o, alone, "hosts");
  EXPECT_TRUE(has(a, "--oversubscribe"));
  EXPECT_TRUE(has(a, "none"));
  alone.procs_per_node = 2;
  EXPECT_FALSE(has(mpirun_prefix(o, alone, "hosts"), "--oversubscribe"));
  alone.procs_per_node = 4;
  o.mpirun_args = "--bind-to core --oversubscribe";
  a = mpirun_prefix(o, alone, "hosts");
  EXPECT_EQ(std::count(a.begin(), a.end(), "--oversubscribe"), 1);
  EXPECT_FALSE(has(a, "none"));
  o.mpirun_args.clear();
  EXPECT_FALSE(oversubscribes(o, four_nodes(0)));  // a hostfile names its slots
  o.local_cores = 0;  // unknown: leave it to mpirun
  EXPECT_FALSE(oversubscribes(o, alone));
}

}  // namespace
}  // namespace lt
