"""Multi-hop factual QA over a generated corpus of fictional entities (retrieval + code tasks).

    from environments.qa import corpus_index, expert_step, intro, load_split, score
    index = corpus_index()                      # built once, then cached on disk
    task = load_split("valid_unseen")[0]
    first_observation = intro(task)
    thought, code = expert_step(task, [])       # e.g. print(search("Zorvex Labs"))
    score("Velmora", task)                      # {"em": 1.0, "f1": 1.0}

The agent's code runs in a sandbox with ``search(query, k=3)`` (from :func:`tools`: the index, as
:func:`agentkd.tools.retrieval.format_hits` text) and ``final_answer(answer)``.
"""

from .corpus import (
    CACHE_ENV,
    cache_dir,
    corpus_documents,
    corpus_hash,
    corpus_index,
    shared_index,
    split_index,
    tools,
    use_index,
)
from .expert import GIVE_UP_ANSWER, OfflineStep, expert_step, run_expert_offline
from .generator import (
    HELD_OUT_TEMPLATES,
    MAX_STEPS,
    SPLIT_SIZES,
    TEMPLATES,
    Hop,
    Question,
    make_question,
    question_for_task,
)
from .hotpot import QuestionFormatError, load_hotpot_jsonl, load_hotpot_split, split_documents
from .prompt import TOOLS_DESCRIPTION, intro
from .scoring import exact_match, f1, normalize_answer, score
from .splits import get_task, load_split
from .world import PARTS, WORLD_SEED, Entity, World, build_world

__all__ = [
    "CACHE_ENV", "GIVE_UP_ANSWER", "HELD_OUT_TEMPLATES", "MAX_STEPS", "PARTS", "SPLIT_SIZES", "TEMPLATES",
    "TOOLS_DESCRIPTION", "WORLD_SEED", "Entity", "Hop", "OfflineStep", "Question", "QuestionFormatError", "World",
    "build_world", "cache_dir", "corpus_documents", "corpus_hash", "corpus_index", "exact_match", "expert_step", "f1",
    "get_task", "intro", "load_hotpot_jsonl", "load_hotpot_split", "load_split", "make_question",
    "normalize_answer", "question_for_task", "run_expert_offline", "score", "shared_index", "split_documents",
    "split_index", "tools", "use_index",
]
