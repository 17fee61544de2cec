#!/usr/bin/env bash
# NCCL_DEBUG in a comment is ignored
export NCCL_SOCKET_IFNAME=eth0
export CUDA_VISIBLE_DEVICES=0,1,2,3
nvidia-smi --query-gpu=name --format=csv
pip install flash-attn --no-build-isolation
torchrun --nproc_per_node=4 train.py
