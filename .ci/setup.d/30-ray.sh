# A single-node Ray 2.x head on 127.0.0.1 for the Ray executor tests. Sourced by .ci/run after
# `make install`. Installs the optional extra (`.[ray]` = ray[default]) into .venv, starts the
# head with the dashboard (the job submission API lives there), two chip types as custom
# resources, a capped object store and its own ports, and exports SUANLI_TEST_RAY=1 and
# SUANLI_RAY_ADDRESS. Teardown kills the process group of `ray start` (never `ray stop`, which
# would stop every Ray on the machine).

_suanli_ray_setup() {
  local t0=$SECONDS
  if ! .venv/bin/python -c "import ray.job_submission" 2>/dev/null; then
    .venv/bin/pip install -q -e '.[ray]'
  fi
  echo "   ray: installed after $((SECONDS - t0)) s"
  local dir="${SUANLI_CI_STATE:-/tmp}/ray"
  local base="${SUANLI_RAY_PORT_BASE:-26380}"
  local dash=$((base + 1))
  rm -rf "$dir"; mkdir -p "$dir"
  export RAY_AUTH_MODE=disabled RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
  setsid bash -c 'echo $$ >"$0/pgid"; exec "$@"' "$dir" .venv/bin/ray start --head \
    --node-ip-address=127.0.0.1 --port="$base" --dashboard-host=127.0.0.1 \
    --dashboard-port="$dash" --include-dashboard=true --ray-client-server-port=$((base + 2)) \
    --dashboard-agent-listen-port=$((base + 3)) --min-worker-port=$((base + 20)) \
    --max-worker-port=$((base + 119)) --num-cpus=2 --object-store-memory=300000000 \
    --disable-usage-stats --temp-dir="$dir" \
    --resources='{"chip:nvidia_h800_sxm": 2, "chip:ascend_910b3": 2}' >"$dir/start.log" 2>&1
  local pgid; pgid="$(cat "$dir/pgid")"
  echo "kill -TERM -- -$pgid 2>/dev/null; sleep 2; kill -KILL -- -$pgid 2>/dev/null" \
    >>"$SUANLI_CI_TEARDOWN"
  local i
  for i in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$dash/api/version" >/dev/null 2>&1 && break; sleep 0.5
  done
  if ! curl -sf "http://127.0.0.1:$dash/api/version" >/dev/null; then
    echo "   ray: job API did not come up"; tail -20 "$dir/start.log"; return 1
  fi
  export SUANLI_TEST_RAY=1 SUANLI_RAY_ADDRESS="http://127.0.0.1:$dash"
  # the GCS address, for drivers that connect with ray.init (simulate --sweep --ray)
  export SUANLI_RAY_GCS="127.0.0.1:$base"
  printf 'export RAY_AUTH_MODE=disabled SUANLI_TEST_RAY=1 SUANLI_RAY_ADDRESS=%q SUANLI_RAY_GCS=%q\n' \
    "$SUANLI_RAY_ADDRESS" "$SUANLI_RAY_GCS" >"$dir/env.sh"
  echo "   ray: head up after $((SECONDS - t0)) s at $SUANLI_RAY_ADDRESS"
}
_suanli_ray_setup
