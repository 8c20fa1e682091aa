"""gta-avx2: a third-party GTA target for x86-64 CPUs with AVX2 and FMA, on ``gta_core.sdk``."""
