# Real source distributions for the port-check tests (tests/test_port_real.py):
#   accelerate 1.1.1 -- a training library (torch.cuda, NCCL, optional bitsandbytes/TE/FP8), 335 kB
#   mmcv 2.1.0       -- a package with custom CUDA kernels (111 .cu/.cuh files), 471 kB
# pip prepares metadata even with --no-deps; mmcv's setup.py needs pkg_resources and wheel, so
# the download runs in a small throw-away venv with setuptools<70 + wheel and no build isolation.
port_dl="$SUANLI_CI_STATE/port-dl-venv"
python3 -m venv "$port_dl"
"$port_dl/bin/pip" install -q "setuptools<70" wheel
mkdir -p "$SUANLI_CI_STATE/sdists"
"$port_dl/bin/pip" download -q --no-binary :all: --no-deps --no-build-isolation \
  -d "$SUANLI_CI_STATE/sdists" accelerate==1.1.1 mmcv==2.1.0
export SUANLI_TEST_SDIST_DIR="$SUANLI_CI_STATE/sdists"
