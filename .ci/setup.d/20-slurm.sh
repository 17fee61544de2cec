# Slurm 22.05 (Debian slurm-wlm) + munge + slurmdbd/MariaDB on 127.0.0.1 for the Slurm executor
# tests. Sourced by .ci/run (after `make install`); also usable by hand:
#   SUANLI_CI_STATE=/tmp/x SUANLI_CI_TEARDOWN=/tmp/x/teardown.sh source .ci/setup.d/20-slurm.sh
# Everything runs from its own state dir with its own munge socket and ports, so it does not
# touch a system Slurm/munge/MariaDB. One node ("$(hostname)") with 8 declared CPUs and two
# GPU types on fake character devices, in three partitions:
#   h800 (gres gpu:h800:2), ascend (gres gpu:910b:2), low (both types, preemptible: CANCEL).
# Exports SUANLI_TEST_SLURM=1, SLURM_CONF and SUANLI_SLURM_DIR for the tests.

_suanli_slurm_setup() {
  local t0=$SECONDS
  local pkgs=(slurm-wlm munge slurmdbd mariadb-server)
  if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null \
     || ! command -v mariadbd >/dev/null || ! command -v munged >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  fi
  echo "   slurm: packages ready after $((SECONDS - t0)) s"

  local dir="${SUANLI_CI_STATE:-/tmp}/slurm"
  local host; host="$(hostname -s)"
  local base="${SUANLI_SLURM_PORT_BASE:-16817}"
  local ctld_port=$base slurmd_port=$((base + 1)) dbd_port=$((base + 2)) db_port=$((base + 3))
  rm -rf "$dir"
  # munged and mariadbd run as their own users: they must be able to reach the state dir
  # (mktemp -d makes $SUANLI_CI_STATE mode 700)
  chmod a+x "$(dirname "$dir")"
  mkdir -p "$dir"/{munge,state,spool,log,dev,db,dbrun,run}

  # --- munge, private socket ------------------------------------------------------------
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 755 "$dir/munge"; chmod 400 "$dir/munge/munge.key"; chown -R munge: "$dir/munge"
  runuser -u munge -- /usr/sbin/munged --key-file="$dir/munge/munge.key" \
    --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munge.seed"
  echo "kill \$(cat '$dir/munge/munged.pid') 2>/dev/null" >>"$SUANLI_CI_TEARDOWN"

  # --- MariaDB for slurmdbd (sacct) -----------------------------------------------------
  chown mysql: "$dir/db"
  mariadb-install-db --datadir="$dir/db" --user=mysql --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null 2>&1
  chown mysql: "$dir/dbrun"
  runuser -u mysql -- /usr/sbin/mariadbd --datadir="$dir/db" --socket="$dir/dbrun/db.sock" \
    --port="$db_port" --bind-address=127.0.0.1 --pid-file="$dir/dbrun/db.pid" \
    --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=0 --skip-name-resolve \
    --log-error="$dir/dbrun/mariadb.log" </dev/null >/dev/null 2>&1 &
  local i
  for i in $(seq 1 100); do [ -S "$dir/dbrun/db.sock" ] && break; sleep 0.1; done
  echo "kill \$(cat '$dir/dbrun/db.pid') 2>/dev/null" >>"$SUANLI_CI_TEARDOWN"
  mariadb -S "$dir/dbrun/db.sock" -u root -e \
    "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'suanli-test';
     GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"

  # --- fake GPU devices -----------------------------------------------------------------
  for i in 0 1 2 3; do mknod "$dir/dev/gpu$i" c 1 3; done

  cat >"$dir/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=root
LogFile=$dir/log/slurmdbd.log
PidFile=$dir/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=suanli-test
StorageLoc=slurm_acct_db
CONF
  chmod 600 "$dir/slurmdbd.conf"

  cat >"$dir/slurm.conf" <<CONF
ClusterName=suanli
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmdParameters=config_overrides
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
GresTypes=gpu
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
MinJobAge=600
KillWait=5
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd_port
AccountingStoragePass=$dir/munge/munge.socket
AccountingStorageTRES=gres/gpu,gres/gpu:h800,gres/gpu:910b
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=8 RealMemory=8000 Gres=gpu:h800:2,gpu:910b:2 State=UNKNOWN
PartitionName=h800 Nodes=$host Default=YES MaxTime=60 State=UP PriorityTier=10
PartitionName=ascend Nodes=$host MaxTime=60 State=UP PriorityTier=10
PartitionName=low Nodes=$host MaxTime=60 State=UP PriorityTier=1 PreemptMode=CANCEL
CONF
  cat >"$dir/gres.conf" <<CONF
NodeName=$host Name=gpu Type=h800 File=$dir/dev/gpu[0-1]
NodeName=$host Name=gpu Type=910b File=$dir/dev/gpu[2-3]
CONF
  export SLURM_CONF="$dir/slurm.conf"

  /usr/sbin/slurmdbd  # reads slurmdbd.conf beside $SLURM_CONF
  echo "kill \$(cat '$dir/run/slurmdbd.pid') 2>/dev/null" >>"$SUANLI_CI_TEARDOWN"
  for i in $(seq 1 50); do
    sacctmgr -i add cluster suanli >/dev/null 2>&1 && break; sleep 0.2
  done
  /usr/sbin/slurmctld -i -f "$dir/slurm.conf"
  echo "kill \$(cat '$dir/run/slurmctld.pid') 2>/dev/null" >>"$SUANLI_CI_TEARDOWN"
  /usr/sbin/slurmd -f "$dir/slurm.conf"
  echo "kill \$(cat '$dir/run/slurmd.pid') 2>/dev/null" >>"$SUANLI_CI_TEARDOWN"
  for i in $(seq 1 150); do
    sinfo -h -N -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)' && break; sleep 0.2
  done
  if ! sinfo -h -N -o '%T' | grep -Eq '^(idle|mixed|allocated)'; then
    echo "   slurm: node did not come up:"; sinfo -N -l; tail -20 "$dir/log/slurmctld.log"
    return 1
  fi
  export SUANLI_TEST_SLURM=1 SUANLI_SLURM_DIR="$dir"
  printf 'export SLURM_CONF=%q SUANLI_TEST_SLURM=1 SUANLI_SLURM_DIR=%q\n' \
    "$SLURM_CONF" "$dir" >"$dir/env.sh"
  echo "   slurm: up after $((SECONDS - t0)) s ($(sinfo -h -o '%P %G' | tr '\n' ' '))"
}
_suanli_slurm_setup
