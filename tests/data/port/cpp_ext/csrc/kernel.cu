#include <cuda_runtime.h>
#include <cublas_v2.h>
#include "common.cuh"

__global__ void scale(float* x, float a, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  unsigned lane;
  asm volatile("mov.u32 %0, %%laneid;" : "=r"(lane));
  if (i < n) x[i] *= a;
}
