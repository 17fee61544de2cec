# PyTorch for `suanli bench` tests (tests/test_bench.py). On these machines this pin installs a
# CPU build; never change the spec.
.venv/bin/pip install -q torch==2.13.0
