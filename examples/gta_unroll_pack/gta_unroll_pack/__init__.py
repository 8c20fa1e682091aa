"""gta-unroll-pack: a third-party rule pack for every CPU target, on ``gta_core.sdk``."""
