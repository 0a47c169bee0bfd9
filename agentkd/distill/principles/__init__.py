"""Principles: trajectories distilled into short reusable lessons, kept in the store, shown at inference.

* :mod:`.mine` — the offline miner (search orders, cautionary patterns, tool sequences);
* :mod:`.extract` — extraction with any LangChain chat model (structured output), and a merge judge;
* :mod:`.lifecycle` — add with merging of near-duplicates, credit by what was shown, prune;
* :mod:`.retrieve` — top-k by similarity × score under a token budget, and the policy wrapper;
* :mod:`.pipeline` — one distillation pass over a store (``agentkd distill principles``);

Importing this package is cheap: chromadb and langchain load when a store or model is used.
"""

from .lifecycle import (
    DEFAULT_THRESHOLD,
    SHOWN_KEY,
    AddReport,
    CreditReport,
    add_principles,
    credit,
    deduplicate,
    merge,
    prune,
    shown_principles,
)
from .mine import SEARCH_ORDER, MinerConfig, mine_principles
from .pipeline import DistillReport, NoTrajectoriesError, distill_principles
from .retrieve import RETRIEVED_KEY, PrincipleRetriever, PrinciplesPolicy, Retrieved

__all__ = [
    "DEFAULT_THRESHOLD", "RETRIEVED_KEY", "SEARCH_ORDER", "SHOWN_KEY", "AddReport", "CreditReport", "DistillReport",
    "MinerConfig", "NoTrajectoriesError", "PrincipleRetriever", "PrinciplesPolicy", "Retrieved", "add_principles",
    "credit", "deduplicate", "distill_principles", "merge", "mine_principles", "prune", "shown_principles",
]
