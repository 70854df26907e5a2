# `llamatrain launch` under a real Slurm: a one-node cluster on loopback (munged, slurmctld and
# slurmd started here, 4 task slots) runs examples/slurm/train.sbatch. The launcher takes the
# node and tasks from the allocation and starts the health check and the ranks with srun; a
# rank SIGKILLed at step 5 is recovered from the newest checkpoint and the final weights and
# optimizer state are byte-identical to a run without the kill; a job whose time limit is near
# stops with a checkpoint before it (exit 86) and the next submission resumes and finishes.
# Needs root (the daemons) and Debian's slurm-wlm and munge, installed here when missing.
# Usage: bash slurm_test.sh <llamatrain> <source-dir>
source "$2/tests/launch/launch_common.sh" "$1" "$2"

if [ "$(id -u)" -ne 0 ]; then echo "skipped: starting slurmctld/slurmd needs root"; exit 77; fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "installing slurm-wlm and munge"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurm-wlm munge; } > "$WORK/apt.log" 2>&1 || { echo "skipped: apt-get could not install slurm-wlm and munge:";
                                                     tail -5 "$WORK/apt.log"; exit 77; }
fi

# --- A cluster of one node on 127.0.0.1, private to this test (own munge socket, ports, state).
C="$WORK/cluster"
mkdir -p "$C/spool" "$C/state" "$C/log"
node=$(hostname -s)
port=$((20000 + $$ % 20000))
dd if=/dev/urandom of="$C/munge.key" bs=128 count=1 2>/dev/null
chmod 600 "$C/munge.key"
cat > "$C/slurm.conf" <<EOF
ClusterName=lt-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$C/munge.sock
CredType=cred/munge
StateSaveLocation=$C/state
SlurmdSpoolDir=$C/spool
SlurmctldPidFile=$C/slurmctld.pid
SlurmdPidFile=$C/slurmd.pid
SlurmctldLogFile=$C/log/slurmctld.log
SlurmdLogFile=$C/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
MpiDefault=pmix
ReturnToService=2
KillWait=5
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$C/slurm.conf"
cleanup() {
  scancel --quiet --user=root 2>/dev/null
  for f in slurmd slurmctld munged; do [ -f "$C/$f.pid" ] && kill "$(cat "$C/$f.pid")" 2>/dev/null; done
  sleep 1
}
trap cleanup EXIT
munged --force -S "$C/munge.sock" --key-file="$C/munge.key" --pid-file="$C/munged.pid" \
  --log-file="$C/log/munged.log" --seed-file="$C/munged.seed" || { echo "FAIL: munged did not start"; exit 1; }
slurmctld -f "$SLURM_CONF" || { echo "FAIL: slurmctld did not start"; cat "$C/log/slurmctld.log"; exit 1; }
slurmd -f "$SLURM_CONF" || { echo "FAIL: slurmd did not start"; cat "$C/log/slurmd.log"; exit 1; }
for i in $(seq 1 60); do
  [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && break
  sleep 0.5
done
check "the one-node cluster is up (sinfo: idle)" [ "$(sinfo -h -o %t)" = idle ]
[ $fail -eq 0 ] || { tail -20 "$C"/log/*.log; exit 1; }

# Ranks under srun share 2 cores 2x: yield when idle, shared memory and TCP only.
export OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_btl=self,vader,tcp LLAMATRAIN="$LT"
# submit <name> [sbatch options] -- <launch arguments>: the example batch script, waited for
# (polling scontrol: sbatch --wait polls every few seconds); prints its exit status.
submit() {
  local name="$1" opts=() id state
  shift
  while [ "$1" != "--" ]; do opts+=("$1"); shift; done
  shift
  id=$(sbatch --parsable --nodes=1 --ntasks=4 --ntasks-per-node=4 --job-name="lt-$name" --output="$WORK/$name.out" \
    "${opts[@]}" "$SRC/examples/slurm/train.sbatch" --healthcheck-args "$HC_ARGS" --backoff 1s "$@") || { echo sbatch-failed; return; }
  for i in $(seq 1 1200); do
    state=$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    case "$state" in PENDING|RUNNING|CONFIGURING|COMPLETING|"") sleep 0.3 ;; *) break ;; esac
  done
  scontrol show job "$id" | sed -n 's/.* ExitCode=\([0-9]*\):.*/\1/p'
}

rc=$(submit ref -- $(job "$WORK/ref" 10 checkpoint.every=2))
check "reference job exits 0" [ "$rc" = 0 ]
check "the launcher used srun with the allocation's node and 4 tasks" \
  grep -q "Slurm job [0-9]*: 1 node(s) x 4 task(s) ($(hostname -s))" "$WORK/ref.out"
check "health check under srun" grep -q '"event":"healthcheck_ok"' "$WORK/ref/launch.log"
check "ranks started by srun --nodelist" grep -q '"event":"attempt_start".*srun.*--nodelist='"$node" "$WORK/ref/launch.log"

rc=$(LT_FAULT_KILL_AT_STEP=5 submit faulty -- --json $(job "$WORK/faulty" 10 checkpoint.every=2))
check "job with a rank killed at step 5 exits 0" [ "$rc" = 0 ]
check "a rank was killed" grep -q '"event":"fault_injected"' "$WORK/faulty/launch.log"
check "one retry" [ "$(json_field "$WORK/faulty.out" retries)" = 1 ]
check "the restart resumed from the newest complete checkpoint" resumed_from_newest "$WORK/faulty/launch.log" 2
check "final weights and optimizer state byte-identical to the job without the kill" \
  same_weights "$WORK/ref/checkpoints/step_00000010" "$WORK/faulty/checkpoints/step_00000010"

# A one-minute allocation, stopped 50 s before its end with a checkpoint (every step is held
# back 0.3 s by the save-delay hook, so the run cannot finish first); then a second job resumes.
rc=$(LT_FAULT_SAVE_DELAY_S=0.3 submit timed --time=1 --signal=B:TERM@5 -- --stop-before 50s $(job "$WORK/timed" 200 checkpoint.every=1))
check "job stopped before the allocation's end exits 86" [ "$rc" = 86 ]
check "the launcher stopped at the allocation's limit" grep -q '"event":"time_limit"' "$WORK/timed/launch.log"
stopped_at=$(cat "$WORK/timed/checkpoints/latest" 2>/dev/null | sed 's/step_0*//')
check "a complete checkpoint was left (step ${stopped_at:-none})" [ -n "$stopped_at" ] && [ "$stopped_at" -gt 0 ] && [ "$stopped_at" -lt 200 ]
rc=$(submit timed2 -- $(job "$WORK/timed" 200 checkpoint.every=50))
check "the next job resumes and finishes" [ "$rc" = 0 ]
check "it resumed from step $stopped_at" grep -q "\"resume_step\":$stopped_at" "$WORK/timed/launch.log"
check "no rank left behind" no_leftovers
[ $fail -eq 0 ] || { for f in "$WORK"/*.out "$C"/log/slurmctld.log; do echo "== $f"; tail -30 "$f"; done; }
exit $fail
