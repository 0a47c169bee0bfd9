"""Multi-hop questions over the fictional world, and the deterministic splits.

Templates (the task type of a task):

* one hop — ``founder``, ``founding_year``, ``birthplace``, ``author``, ``capital``, ``band_city``;
* bridge — ``founder_birthplace``, ``author_birthplace``, ``hq_country``, ``singer_birth_year`` (two
  documents) and ``founder_birth_country`` (three: company → founder → city → country);
* comparison — ``compare_founded``, ``compare_published``, ``compare_born`` ("Which was founded
  first, A or B?": two documents and a comparison of years).

Splits:

* ``train`` (400) and ``valid_seen`` (60) ask about entities of the world's *seen* part, with every
  template but ``compare_born``; valid_seen questions are never train questions.
* ``valid_unseen`` (60) is held out twice: it asks only about entities of the *unseen* part, so none
  of its supporting documents is a supporting document of any train or valid_seen question, and 12
  of its questions use the held-out template ``compare_born``.

Every question is drawn per template in a seeded order and dealt round-robin over templates, so a
split is the same list for the same name. A task's params hold the world seed, template, entity ids
and phrasing (enough to rebuild it with :func:`question_for_task`), the gold answer and the titles
of its supporting documents.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from itertools import combinations

from agentkd.schema import Task

from .world import WORLD_SEED, World, build_world

__all__ = [
    "HELD_OUT_TEMPLATES", "MAX_STEPS", "SPLIT_SIZES", "TEMPLATES", "Hop", "Question", "build_split",
    "make_question", "question_for_task",
]

SPLIT_SIZES = {"train": 400, "valid_seen": 60, "valid_unseen": 60}
#: Templates that only valid_unseen asks (and how many of its questions use them).
HELD_OUT_TEMPLATES = ("compare_born",)
_HELD_OUT_COUNT = 12
#: A generous step limit for an agent: the expert needs at most 4 steps (3 searches and an answer).
MAX_STEPS = 10

# template -> (kind, entity kind(s) it asks about, phrasings)
TEMPLATES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "founder": ("one_hop", "company", ("Who founded {0}?", "Who is the founder of {0}?")),
    "founding_year": ("one_hop", "company", ("In what year was {0} founded?", "When was {0} founded?")),
    "birthplace": ("one_hop", "person", ("In which city was {0} born?", "Where was {0} born?")),
    "author": ("one_hop", "book", ("Who wrote {0}?", "Who is the author of {0}?")),
    "capital": ("one_hop", "country", ("What is the capital of {0}?", "Which city is the capital of {0}?")),
    "band_city": ("one_hop", "band", ("In which city was {0} formed?", "Where was the band {0} formed?")),
    "founder_birthplace": ("bridge", "company", ("In which city was the founder of {0} born?",
                                                 "Where was the person who founded {0} born?")),
    "author_birthplace": ("bridge", "book", ("In which city was the author of {0} born?",
                                             "Where was the writer of {0} born?")),
    "hq_country": ("bridge", "company", ("In which country is {0} headquartered?",
                                         "The headquarters of {0} are in which country?")),
    "singer_birth_year": ("bridge", "band", ("In what year was the lead singer of {0} born?",
                                             "When was the lead singer of {0} born?")),
    "founder_birth_country": ("bridge", "company", ("In which country was the founder of {0} born?",
                                                    "The founder of {0} was born in which country?")),
    "compare_founded": ("comparison", "company", ("Which was founded first, {0} or {1}?",
                                                  "Which company is older, {0} or {1}?")),
    "compare_published": ("comparison", "book", ("Which was published first, {0} or {1}?",
                                                 "Which book came out earlier, {0} or {1}?")),
    "compare_born": ("comparison", "person", ("Who was born first, {0} or {1}?", "Who is older, {0} or {1}?")),
}


@dataclass(frozen=True)
class Hop:
    """One retrieval step of the answer path: search ``query``; document ``doc`` states ``fact``.

    ``relation`` names what the fact is (``founder``, ``birthplace``...; see the expert's phrases);
    ``fact`` is ``None`` when seeing the document is enough (HotpotQA tasks).
    """

    query: str
    doc: str
    fact: str | None
    relation: str


@dataclass(frozen=True)
class Question:
    template: str
    kind: str  # one_hop, bridge, comparison (HotpotQA: its own type)
    text: str
    answer: str
    hops: tuple[Hop, ...]
    options: tuple[str, str] | None = None  # the two names a comparison asks about, in question order

    @property
    def supporting(self) -> list[str]:
        """Titles of the supporting documents, in hop order."""
        return list(dict.fromkeys(hop.doc for hop in self.hops))


def _hops(world: World, template: str, ids: tuple[str, ...]) -> tuple[Hop, ...]:
    e = world[ids[0]]
    f, n = e.facts, world.name

    def hop(entity_id: str, relation: str, fact: str) -> Hop:
        name = n(entity_id)
        return Hop(name, name, fact, relation)

    if template == "founder":
        return (hop(e.id, "founder", n(f["founder"])),)
    if template == "founding_year":
        return (hop(e.id, "founding year", str(f["founded"])),)
    if template == "birthplace":
        return (hop(e.id, "birthplace", n(f["born_in"])),)
    if template == "author":
        return (hop(e.id, "author", n(f["author"])),)
    if template == "capital":
        return (hop(e.id, "capital", n(f["capital"])),)
    if template == "band_city":
        return (hop(e.id, "band city", n(f["city"])),)
    if template == "founder_birthplace":
        founder = world[f["founder"]]
        return hop(e.id, "founder", founder.name), hop(founder.id, "birthplace", n(founder.facts["born_in"]))
    if template == "author_birthplace":
        author = world[f["author"]]
        return hop(e.id, "author", author.name), hop(author.id, "birthplace", n(author.facts["born_in"]))
    if template == "hq_country":
        hq = world[f["hq"]]
        return hop(e.id, "headquarters", hq.name), hop(hq.id, "country", n(hq.facts["country"]))
    if template == "singer_birth_year":
        singer = world[f["singer"]]
        return hop(e.id, "lead singer", singer.name), hop(singer.id, "birth year", str(singer.facts["birth_year"]))
    if template == "founder_birth_country":
        founder = world[f["founder"]]
        city = world[founder.facts["born_in"]]
        return (hop(e.id, "founder", founder.name), hop(founder.id, "birthplace", city.name),
                hop(city.id, "country", n(city.facts["country"])))
    year_key, relation = {"compare_founded": ("founded", "founding year"),
                          "compare_published": ("published", "publication year"),
                          "compare_born": ("birth_year", "birth year")}[template]
    return tuple(hop(i, relation, str(world[i].facts[year_key])) for i in ids)


def make_question(world: World, template: str, ids: tuple[str, ...], phrasing: int = 0) -> Question:
    """The question of a template about entities ``ids`` (one id; two for comparisons)."""
    kind, _, phrasings = TEMPLATES[template]
    names = [world.name(i) for i in ids]
    hops = _hops(world, template, ids)
    if kind == "comparison":
        years = [int(h.fact or 0) for h in hops]
        if years[0] == years[1]:
            raise ValueError(f"{names[0]} and {names[1]} share the year {years[0]}: no unique answer")
        return Question(template, kind, phrasings[phrasing].format(*names), names[years.index(min(years))], hops,
                        (names[0], names[1]))
    return Question(template, kind, phrasings[phrasing].format(*names), hops[-1].fact or "", hops)


def _year(world: World, template: str, entity_id: str) -> int:
    key = {"compare_founded": "founded", "compare_published": "published", "compare_born": "birth_year"}[template]
    return world[entity_id].facts[key]


def _candidates(world: World, part: str, template: str) -> list[tuple[str, ...]]:
    """Every entity tuple the template can ask about in a part, in a seeded order."""
    kind, entity_kind, _ = TEMPLATES[template]
    ids = [e.id for e in world.of(entity_kind, part)]
    if kind == "comparison":
        pool = [(a, b) for a, b in combinations(ids, 2) if _year(world, template, a) != _year(world, template, b)]
    else:
        pool = [(i,) for i in ids]
    rng = random.Random(f"qa-questions/{world.seed}/{part}/{template}")
    rng.shuffle(pool)
    if kind == "comparison":  # either entity may come first in the question
        pool = [pair if rng.random() < 0.5 else pair[::-1] for pair in pool]
    return pool


def _deal(pools: dict[str, list[tuple[str, ...]]], count: int) -> list[tuple[str, tuple[str, ...]]]:
    """Take ``count`` questions round-robin over the templates (skipping exhausted ones); pops from pools."""
    dealt: list[tuple[str, tuple[str, ...]]] = []
    while len(dealt) < count:
        before = len(dealt)
        for template, pool in pools.items():
            if pool and len(dealt) < count:
                dealt.append((template, pool.pop(0)))
        if len(dealt) == before:
            raise RuntimeError(f"the world has only {len(dealt)} questions left for these templates, not {count}")
    return dealt


@cache
def build_split(name: str, seed: int = WORLD_SEED) -> tuple[Task, ...]:
    """The tasks of the named split ``name`` in world ``seed`` (use :func:`environments.qa.load_split`)."""
    world = build_world(seed)
    if name == "valid_unseen":
        pools = {t: _candidates(world, "unseen", t) for t in TEMPLATES if t not in HELD_OUT_TEMPLATES}
        held = {t: _candidates(world, "unseen", t) for t in HELD_OUT_TEMPLATES}
        chosen = _deal(held, _HELD_OUT_COUNT) + _deal(pools, SPLIT_SIZES[name] - _HELD_OUT_COUNT)
        random.Random(f"qa-split/{seed}/{name}").shuffle(chosen)
        part = "unseen"
    else:
        pools = {t: _candidates(world, "seen", t) for t in TEMPLATES if t not in HELD_OUT_TEMPLATES}
        valid = _deal(pools, SPLIT_SIZES["valid_seen"])  # valid_seen is dealt first, train from what is left
        chosen = valid if name == "valid_seen" else _deal(pools, SPLIT_SIZES["train"])
        part = "seen"
    tasks = []
    for index, (template, ids) in enumerate(chosen):
        phrasing = random.Random(f"qa-phrasing/{seed}/{template}/{'/'.join(ids)}").randrange(
            len(TEMPLATES[template][2]))
        question = make_question(world, template, ids, phrasing)
        tasks.append(Task(
            task_id=f"qa/{name}/{index:04d}",
            env="qa",
            split=name,
            task_type=template,
            goal=question.text,
            index=index,
            params={"world_seed": seed, "part": part, "template": template, "entities": list(ids),
                    "phrasing": phrasing, "kind": question.kind, "answer": question.answer,
                    "supporting": question.supporting},
        ))
    return tuple(tasks)


def question_for_task(task: Task) -> Question:
    """Rebuild a task's question with its answer path: from the world for generated tasks, else from
    the supporting titles (HotpotQA tasks, see :func:`~environments.qa.hotpot.load_hotpot_jsonl`)."""
    params = task.params
    if params.get("template") in TEMPLATES and "world_seed" in params:
        world = build_world(int(params["world_seed"]))
        return make_question(world, params["template"], tuple(params["entities"]), int(params.get("phrasing", 0)))
    if "answer" in params and params.get("supporting"):
        hops = tuple(Hop(title, title, None, "document") for title in params["supporting"])
        return Question(task.task_type, str(params.get("type") or "hotpot"), task.goal, str(params["answer"]), hops)
    raise ValueError(
        f"task {task.task_id!r} is not a qa task: its params need a template and world_seed (generated) "
        "or an answer and supporting titles (HotpotQA)"
    )
