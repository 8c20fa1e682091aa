"""gta-arm: a third-party GTA target for AArch64 CPUs with i8mm, on ``gta_core.sdk``."""
