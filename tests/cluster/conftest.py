"""The Cluster cases reuse the fault-suite helpers of ``tests/faults/faultkit.py``."""
