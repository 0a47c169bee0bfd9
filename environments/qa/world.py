"""A seeded fictional world: countries, cities, people, companies, books and bands, and their documents.

Every name is built from syllables and checked to be new, and no name word is a prefix of another,
so a name means exactly one entity and no model can know a fact about it without reading its
document. The world has two disjoint *parts*: ``seen`` entities (train and valid_seen questions)
and ``unseen`` ones (valid_unseen questions). Relations never cross parts, so an unseen question's
documents are never a supporting document of a seen question.

Each entity has one document (title = its name): its facts in varied phrasing, plus distractors —
facts about related entities that look like answers to the wrong question (a company's factory city
next to its headquarters, a chief executive next to its founder, a spouse's birthplace in a person's
entry). Every distractor is true in the world, so documents never contradict each other. Facts are
stated in the document of their subject only (a founder's entry does not name the company), so a
bridge question needs a search per hop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cache
from typing import Any

__all__ = ["PARTS", "WORLD_SEED", "Entity", "World", "build_world"]

#: Seed of the world the splits and the corpus are built from.
WORLD_SEED = 0
PARTS = ("seen", "unseen")

# How many entities of each role each part gets (one company per founder, one band per singer).
_SIZES = {
    "seen": {"country": 10, "cities_per_country": 4, "founder": 40, "author": 24, "book": 36, "singer": 16,
             "other": 20},
    "unseen": {"country": 4, "cities_per_country": 3, "founder": 12, "author": 8, "book": 12, "singer": 6,
               "other": 8},
}

_ONSETS = ("b", "br", "d", "dr", "f", "g", "gr", "k", "kr", "l", "m", "n", "p", "qu", "r", "s", "st", "t", "th",
           "tr", "v", "vr", "z", "h", "j", "sk", "y")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou")
_CODAS = ("", "", "n", "r", "l", "s", "th", "x", "m", "rk", "nd", "sh", "v", "k", "z")
_COUNTRY_SUFFIXES = ("ia", "ar", "esh", "ora", "and", "istan")
_COMPANY_KINDS = (("Labs", "research"), ("Systems", "software"), ("Motors", "car"), ("Foods", "food"),
                  ("Textiles", "textile"), ("Pharma", "pharmaceutical"), ("Energy", "energy"), ("Media", "media"),
                  ("Airways", "airline"), ("Robotics", "robotics"))
_BOOK_NOUNS = ("Lantern", "Orchard", "River", "Mirror", "Harbor", "Winter", "Garden", "Compass", "Tower", "Voyage",
               "Silence", "Crown", "Ember", "Tide", "Meadow", "Bridge")
_BOOK_PATTERNS = ("The {noun} of {root}", "{root} and the {noun}", "{a} {noun} for {root}")
_BAND_NOUNS = ("Owls", "Ravens", "Wolves", "Comets", "Sparrows", "Tigers", "Echoes", "Pilots")
_OCCUPATIONS = {
    "founder": ("engineer", "chemist", "entrepreneur", "inventor", "economist"),
    "author": ("novelist", "poet", "historian", "journalist", "playwright"),
    "singer": ("singer", "songwriter", "guitarist"),
    "other": ("painter", "architect", "physician", "athlete", "sculptor", "diplomat", "chef", "astronomer"),
}
_BOOK_GENRES = ("novel", "poetry collection", "history book", "memoir", "mystery novel", "science-fiction novel")
_BAND_GENRES = ("rock", "folk", "jazz", "electronic", "punk", "pop")
_HOBBIES = ("collects old maps", "keeps bees", "plays chess", "restores clocks", "grows orchids", "sails")
_FLAGS = ("green and white", "red and gold", "blue and black", "orange and grey", "purple and silver")


@dataclass(frozen=True)
class Entity:
    """One thing in the world: ``facts`` hold values and the ids of related entities."""

    id: str  # "<kind>/<number>", e.g. "company/007"
    kind: str  # country, city, person, company, book, band
    name: str
    part: str  # "seen" or "unseen"
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class World:
    seed: int
    entities: dict[str, Entity]

    def __getitem__(self, entity_id: str) -> Entity:
        return self.entities[entity_id]

    def of(self, kind: str, part: str | None = None) -> list[Entity]:
        """Entities of a kind (in id order), optionally of one part."""
        return [e for e in self.entities.values() if e.kind == kind and (part is None or e.part == part)]

    def name(self, entity_id: str) -> str:
        return self.entities[entity_id].name

    def document(self, entity_id: str) -> str:
        """The text of an entity's document (deterministic in the world seed and the id)."""
        return _document(self, self.entities[entity_id])


class _Names:
    """Made-up words, each new and neither a prefix of nor prefixed by any earlier one."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: list[str] = []

    def _free(self, word: str) -> bool:
        low = word.lower()
        return not any(low.startswith(u) or u.startswith(low) for u in self.used)

    def word(self, syllables: tuple[int, ...] = (2, 3)) -> str:
        while True:
            count = self.rng.choice(syllables)
            word = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(count))
            word = (word + self.rng.choice(_CODAS)).capitalize()
            if 4 <= len(word) <= 9 and self._free(word):
                self.used.append(word.lower())
                return word

    def country(self) -> str:
        while True:
            name = self.word((2,)).rstrip("aeiou") + self.rng.choice(_COUNTRY_SUFFIXES)  # Vela+ia -> Velia
            if self._free(name):
                self.used.append(name.lower())
                return name


def _add(entities: dict[str, Entity], kind: str, name: str, part: str, **facts: Any) -> Entity:
    number = sum(1 for e in entities.values() if e.kind == kind)
    entity = Entity(f"{kind}/{number:03d}", kind, name, part, facts)
    entities[entity.id] = entity
    return entity


def _build_part(entities: dict[str, Entity], part: str, names: _Names, rng: random.Random) -> None:
    size = _SIZES[part]
    countries, cities = [], []
    for _ in range(size["country"]):
        country = _add(entities, "country", names.country(), part,
                       language=names.word((2,)), currency=names.word((2,)), flag=rng.choice(_FLAGS),
                       independence=rng.randint(1700, 1990))
        countries.append(country)
        for number in range(size["cities_per_country"]):
            city = _add(entities, "city", names.word(), part, country=country.id, founded=rng.randint(800, 1850),
                        population=rng.randrange(20_000, 3_000_000, 1000), river=names.word((2,)),
                        capital=number == 0)
            cities.append(city)
        country.facts["capital"] = cities[-size["cities_per_country"]].id
        country.facts["cities"] = [c.id for c in cities[-size["cities_per_country"]:]]
    for country in countries:
        country.facts["borders"] = rng.choice([c.id for c in countries if c is not country])
    for city in cities:
        abroad = [c.id for c in cities if c.facts["country"] != city.facts["country"]]
        city.facts["twin"] = rng.choice(abroad)

    people: dict[str, list[Entity]] = {}
    for role in ("founder", "author", "singer", "other"):
        people[role] = []
        for _ in range(size[role]):
            top = 1975 if role != "other" else 1995  # role holders act 22-48 years after birth, before 2024
            person = _add(entities, "person", f"{names.word((2,))} {names.word()}", part,
                          born_in=rng.choice(cities).id, birth_year=rng.randint(1880, top),
                          occupation=rng.choice(_OCCUPATIONS[role]), hobby=rng.choice(_HOBBIES))
            people[role].append(person)
    everyone = [p for group in people.values() for p in group]
    for person in everyone:
        if rng.random() < 0.6:
            person.facts["moved_to"] = rng.choice([c.id for c in cities if c.id != person.facts["born_in"]])
        if rng.random() < 0.5:
            person.facts["spouse"] = rng.choice([p.id for p in everyone if p is not person])

    def other_person(*not_ids: str) -> str:
        return rng.choice([p.id for p in everyone if p.id not in not_ids])

    def other_city(*not_ids: str) -> str:
        return rng.choice([c.id for c in cities if c.id not in not_ids])

    for founder in people["founder"]:
        suffix, industry = rng.choice(_COMPANY_KINDS)
        hq = rng.choice(cities).id
        company = _add(entities, "company", f"{names.word()} {suffix}", part, founder=founder.id,
                       founded=founder.facts["birth_year"] + rng.randint(22, 48), hq=hq, industry=industry,
                       employees=rng.randrange(40, 90_000, 10), factory=other_city(hq), ceo=other_person(founder.id))
        founder.facts["founded_company"] = company.id
    for number in range(size["book"]):
        author = people["author"][number % len(people["author"])]
        noun = rng.choice(_BOOK_NOUNS)
        title = rng.choice(_BOOK_PATTERNS).format(noun=noun, root=names.word(), a="An" if noun[0] in "AEIOU" else "A")
        book = _add(entities, "book", title, part, author=author.id,
                    published=author.facts["birth_year"] + rng.randint(22, 48), genre=rng.choice(_BOOK_GENRES),
                    translator=other_person(author.id), setting=rng.choice(cities).id)
        book.facts["translated"] = book.facts["published"] + rng.randint(2, 15)
        author.facts.setdefault("books", []).append(book.id)
    for singer in people["singer"]:
        formed_in = rng.choice(cities).id
        band = _add(entities, "band", f"The {names.word()} {rng.choice(_BAND_NOUNS)}", part, singer=singer.id,
                    city=formed_in, formed=singer.facts["birth_year"] + rng.randint(17, 30),
                    genre=rng.choice(_BAND_GENRES), producer=other_person(singer.id), moved_to=other_city(formed_in))
        singer.facts["band"] = band.id


@cache
def build_world(seed: int = WORLD_SEED) -> World:
    """The world of a seed (cached: the same object for the same seed)."""
    rng = random.Random(f"qa-world/{seed}")
    names = _Names(rng)
    entities: dict[str, Entity] = {}
    for part in PARTS:
        _build_part(entities, part, names, rng)
    return World(seed, entities)


# ---- documents ----------------------------------------------------------------------------------


def _last(name: str) -> str:
    return name.split()[-1]


def _list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _document(world: World, e: Entity) -> str:
    rng = random.Random(f"qa-doc/{world.seed}/{e.id}")
    f, n = e.facts, world.name
    pick = rng.choice
    head: list[str] = []
    extra: list[str] = []
    if e.kind == "country":
        head.append(pick([f"{e.name} is a country. Its capital is {n(f['capital'])}.",
                          f"{e.name} is a sovereign state whose capital city is {n(f['capital'])}.",
                          f"The country of {e.name} has {n(f['capital'])} as its capital."]))
        others = [n(c) for c in f["cities"] if c != f["capital"]]
        extra += [f"Other cities of {e.name} include {_list(others)}.",
                  f"Most people there speak {f['language']}, and the currency is the {f['currency'].lower()}.",
                  f"The flag of {e.name} is {f['flag']}.",
                  f"{e.name} became independent in {f['independence']} and borders {n(f['borders'])}."]
    elif e.kind == "city":
        country = n(f["country"])
        head.append(pick([f"{e.name} is a city in {country}.", f"{e.name} is a city located in {country}.",
                          f"The city of {e.name} lies in {country}."]))
        if f["capital"]:
            head.append(f"It is the capital of {country}.")
        extra += [pick([f"It was founded in {f['founded']}.", f"The city dates back to {f['founded']}."]),
                  f"About {f['population']:,} people live there, along the {f['river']} river.",
                  f"It is twinned with {n(f['twin'])} in {n(world[f['twin']].facts['country'])}."]
    elif e.kind == "person":
        city, year, job, last = n(f["born_in"]), f["birth_year"], f["occupation"], _last(e.name)
        article = "an" if job[0] in "aeiou" else "a"
        head.append(pick([f"{e.name} is {article} {job} who was born in {city} in {year}.",
                          f"Born in {city} in {year}, {e.name} is {article} {job}.",
                          f"{e.name} ({job}) was born in {year} in the city of {city}."]))
        # Roles are told without the name of the company, book or band: reaching this entry from one of
        # those takes a search for the person, which is what makes bridge questions two hops.
        if "founded_company" in f:
            industry = world[f["founded_company"]].facts["industry"]
            head.append(f"{last} is best known as the founder of {'an' if industry[0] in 'aeiou' else 'a'} "
                        f"{industry} company.")
        if "books" in f:
            count = len(f["books"])
            head.append(f"{last} has published {'one book' if count == 1 else f'{count} books'}.")
        if "band" in f:
            head.append(f"{last} sings lead in a {world[f['band']].facts['genre']} band.")
        if "moved_to" in f:
            extra.append(f"{last} later moved to {n(f['moved_to'])}.")
        if "spouse" in f:
            spouse = world[f["spouse"]]
            extra.append(f"{last} is married to {spouse.name}, who was born in {n(spouse.facts['born_in'])}.")
        extra.append(f"In spare time, {last} {f['hobby']}.")
    elif e.kind == "company":
        founder, year, industry = n(f["founder"]), f["founded"], f["industry"]
        article = "an" if industry[0] in "aeiou" else "a"
        head.append(pick([f"{e.name} is {article} {industry} company founded in {year} by {founder}.",
                          f"{founder} founded {e.name}, {article} {industry} company, in {year}.",
                          f"Founded by {founder} in {year}, {e.name} is {article} {industry} company."]))
        head.append(pick([f"It is headquartered in {n(f['hq'])}.", f"Its headquarters are in {n(f['hq'])}.",
                          f"The company is based in {n(f['hq'])}."]))
        extra += [f"Its largest factory is in {n(f['factory'])}.",
                  f"The current chief executive is {n(f['ceo'])}.",
                  f"It employs about {f['employees']:,} people."]
    elif e.kind == "book":
        author, year, genre = n(f["author"]), f["published"], f["genre"]
        head.append(pick([f"{e.name} is a {genre} by {author}, first published in {year}.",
                          f"{author} wrote {e.name}, a {genre} published in {year}.",
                          f"Published in {year}, {e.name} is a {genre} written by {author}."]))
        extra += [f"It was translated by {n(f['translator'])} in {f['translated']}.",
                  f"The story is set in {n(f['setting'])}."]
    elif e.kind == "band":
        city, year, genre = n(f["city"]), f["formed"], f["genre"]
        head.append(pick([f"{e.name} is a {genre} band formed in {city} in {year}.",
                          f"Formed in {year} in {city}, {e.name} plays {genre} music.",
                          f"{e.name} are a {genre} group that formed in {city} in {year}."]))
        head.append(pick([f"Its lead singer is {n(f['singer'])}.", f"{n(f['singer'])} sings lead vocals."]))
        extra += [f"Their first album was produced by {n(f['producer'])}.",
                  f"The band later moved to {n(f['moved_to'])}."]
    else:  # pragma: no cover - the generator makes no other kinds
        raise ValueError(f"unknown entity kind {e.kind!r}")
    rng.shuffle(extra)
    return " ".join(head + extra)
