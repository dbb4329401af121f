"""fastinception: fused Triton kernels for the GoogLeNet/Inception block."""
