"""Stores: where sessions live. `RedisStore` / `AsyncRedisStore` share one implementation of
every flow (`_layouts`) and differ only in their runner; `MemoryStore` is for tests."""
