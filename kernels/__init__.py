"""kernels: Triton GPU kernels with PyTorch references (MLA decode, FP8 GEMM, MoE layouts)."""
