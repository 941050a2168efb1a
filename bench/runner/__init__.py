"""The pieces of ``bench/run.py``: app processes, load generation, Redis probes, the report."""
