"""Benchmarks: ratios measured side by side in one run (``agentkd bench ...``), one module per benchmark.

* :mod:`.env` — native vs official household engine (``agentkd bench env``);
* :mod:`.store` — experience-store ingest and query latency (``agentkd bench store``);
* :mod:`.train` — SFT batching, and SFT vs a plain loop (``agentkd bench train``);
* :mod:`.sandbox` — code sandbox isolation modes (``agentkd bench sandbox``);
* :mod:`.replay` — batching, shared prefill and prefix reuse (``agentkd bench replay``);
* :mod:`.principles` — the household explorer without and with principles (``agentkd bench principles``);
* :mod:`.episodes` — household expert episodes, the data several of them (and tests) use.

Benchmarks sit at the top of the import graph: they may use every layer, and nothing imports them but
the CLI. Importing this package imports nothing else.
"""
