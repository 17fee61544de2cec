from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

setup(
    name="fused_ops",
    install_requires=["torch>=2.1", "apex"],
    ext_modules=[CUDAExtension("fused_ops", ["csrc/ops.cpp", "csrc/kernel.cu"])],
    cmdclass={"build_ext": BuildExtension},
)
