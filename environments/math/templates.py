"""Problem templates: how each kind of math problem is drawn, worded, solved exactly and coded.

A :class:`Template` is data, not a class hierarchy: a function that draws the numbers, format
strings for the question, the expert's plan and the expert's code, and an exact solver on
:class:`~fractions.Fraction` that gives the gold answer. The numbers are large enough that a small
model cannot do the arithmetic in its head, so the tasks reward writing code.

Templates marked ``held_out`` never occur in ``train`` or ``valid_seen``; ``valid_unseen`` is drawn
from them alone (see :data:`HELD_OUT`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

Numbers = dict[str, Any]  # int or float values; JSON-serialisable so they fit in Task.params

TASK_TYPES = ("arithmetic", "word_problem", "sequence")


@dataclass(frozen=True)
class Template:
    """One kind of problem.

    `question`, `plan` and `code` are `str.format` strings over the numbers plus the display values
    of `extra`; `code` must print ``f"{label}: <number>"`` on one line, which the expert reads back.
    """

    name: str
    task_type: str
    draw: Callable[[random.Random], Numbers]
    question: str
    plan: str
    code: str
    label: str
    solve: Callable[[Numbers], Fraction]  # the exact answer, before any rounding
    decimals: int = 0  # 0: integer answer; otherwise the question asks to round to this many places
    held_out: bool = False
    extra: Callable[[Numbers], dict[str, Any]] | None = None  # derived values for display only

    def fields(self, numbers: Numbers) -> dict[str, Any]:
        return {**numbers, **(self.extra(numbers) if self.extra else {})}

    def render_question(self, numbers: Numbers) -> str:
        return self.question.format(**self.fields(numbers))

    def render_plan(self, numbers: Numbers) -> str:
        return self.plan.format(**self.fields(numbers))

    def render_code(self, numbers: Numbers) -> str:
        return self.code.format(**self.fields(numbers))


def ordinal(n: int) -> str:
    """1 → "1st", 12 → "12th", 1,022 → "1,022nd"."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def exact(value: int | float) -> Fraction:
    # Floats in params are short decimals such as 12.99; their text is the intended exact value.
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def _cents(rng: random.Random, lo: int, hi: int) -> float:
    """A price between lo and hi dollars, in whole cents."""
    return rng.randint(lo * 100, hi * 100) / 100


def _nth(n: Numbers) -> dict[str, Any]:
    return {"nth": ordinal(n["n"])}


def _arithmetic_terms(n: Numbers) -> dict[str, Any]:
    """The first three terms (t1, t2, t3) of the sequence a, a + d, …, shown in the question."""
    return {"t1": n["a"], "t2": n["a"] + n["d"], "t3": n["a"] + 2 * n["d"], **_nth(n)}


def _geometric_terms(n: Numbers) -> dict[str, Any]:
    return {"t1": n["a"], "t2": n["a"] * n["r"], "t3": n["a"] * n["r"] ** 2, **_nth(n)}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _draw_mixed(r: random.Random) -> Numbers:
    e = r.randint(11, 997)
    # d is a multiple of e so that "d ÷ e" is a whole number
    return {"a": r.randint(1_000, 999_999), "b": r.randint(1_000, 999_999), "c": r.randint(101, 999), "e": e,
            "d": e * r.randint(1_000, 99_999)}


def _draw_savings(r: random.Random) -> Numbers:
    income = r.randint(3_000, 25_000)
    return {"income": income, "spend": r.randint(income * 4 // 10, income * 9 // 10),
            "goal": r.randint(100_000, 5_000_000)}


def _sum_multiples(k: int, lo: int, hi: int) -> Fraction:
    first, last = _ceil_div(lo, k) * k, hi // k * k
    return Fraction((first + last) * ((last - first) // k + 1), 2)


# ---- arithmetic ---------------------------------------------------------------------------------

_ARITHMETIC = [
    Template(
        "product_minus", "arithmetic",
        draw=lambda r: {"a": r.randint(10_000, 99_999), "b": r.randint(10_000, 99_999), "c": r.randint(1_000, 9_999)},
        question="What is {a} × {b} − {c}?",
        plan="I need the product of {a} and {b}, minus {c}; Python integers make it exact.",
        code="a = {a}\nb = {b}\nc = {c}\nresult = a * b - c\nprint(\"Result:\", result)",
        label="Result",
        solve=lambda n: Fraction(n["a"] * n["b"] - n["c"]),
    ),
    Template(
        "power_mod", "arithmetic",
        draw=lambda r: {"base": r.randint(2, 97), "exp": r.randint(40, 200), "mod": r.randint(100_003, 9_999_991)},
        question="Compute {base}^{exp} mod {mod}.",
        plan="I need the remainder of {base} to the power {exp} modulo {mod}; pow with three arguments does it.",
        code="base = {base}\nexponent = {exp}\nmodulus = {mod}\nresult = pow(base, exponent, modulus)\n"
             "print(\"Result:\", result)",
        label="Result",
        solve=lambda n: Fraction(pow(n["base"], n["exp"], n["mod"])),
    ),
    Template(
        "remainder", "arithmetic",
        draw=lambda r: {"n": r.randint(10**11, 10**13), "d": r.randint(101, 9_999)},
        question="What is the remainder when {n} is divided by {d}?",
        plan="I need {n} modulo {d}.",
        code="n = {n}\nd = {d}\nremainder = n % d\nprint(\"Remainder:\", remainder)",
        label="Remainder",
        solve=lambda n: Fraction(n["n"] % n["d"]),
    ),
    Template(
        "quotient", "arithmetic",
        draw=lambda r: {"n": r.randint(10**9, 10**12), "d": r.randint(101, 99_999)},
        question="What is {n} ÷ {d}, rounded down to a whole number?",
        plan="I need the integer quotient of {n} by {d}, which is floor division.",
        code="n = {n}\nd = {d}\nquotient = n // d\nprint(\"Quotient:\", quotient)",
        label="Quotient",
        solve=lambda n: Fraction(n["n"] // n["d"]),
    ),
    Template(
        "range_sum", "arithmetic",
        draw=lambda r: {"lo": r.randint(100, 9_999), "hi": r.randint(100_000, 999_999)},
        question="What is the sum of all integers from {lo} to {hi}, inclusive?",
        plan="I need the sum of the integers {lo} through {hi}; summing the range gives it directly.",
        code="lo = {lo}\nhi = {hi}\ntotal = sum(range(lo, hi + 1))\nprint(\"Sum:\", total)",
        label="Sum",
        solve=lambda n: Fraction((n["lo"] + n["hi"]) * (n["hi"] - n["lo"] + 1), 2),
    ),
    Template(
        "mixed_expression", "arithmetic",
        draw=_draw_mixed,
        question="What is ({a} + {b}) × {c} − {d} ÷ {e}? (The division is exact.)",
        plan="I need ({a} + {b}) times {c}, minus {d} divided by {e}.",
        code="a = {a}\nb = {b}\nc = {c}\nd = {d}\ne = {e}\nresult = (a + b) * c - d // e\n"
             "print(\"Result:\", result)",
        label="Result",
        solve=lambda n: Fraction(n["a"] + n["b"]) * n["c"] - Fraction(n["d"], n["e"]),
    ),
    Template(
        "big_product", "arithmetic",
        draw=lambda r: {"a": r.randint(1_000, 99_999), "b": r.randint(1_000, 99_999), "c": r.randint(100, 9_999)},
        question="What is {a} × {b} × {c}?",
        plan="I need the product of {a}, {b} and {c}.",
        code="a = {a}\nb = {b}\nc = {c}\nproduct = a * b * c\nprint(\"Product:\", product)",
        label="Product",
        solve=lambda n: Fraction(n["a"] * n["b"] * n["c"]),
    ),
    Template(
        "sum_multiples", "arithmetic", held_out=True,
        draw=lambda r: {"k": r.randint(7, 97), "lo": r.randint(100, 9_999), "hi": r.randint(100_000, 999_999)},
        question="What is the sum of all multiples of {k} between {lo} and {hi}, inclusive?",
        plan="I need the multiples of {k} from {lo} to {hi}: start at the first one at or above {lo} and add them, "
             "stepping by {k}.",
        code="k = {k}\nlo = {lo}\nhi = {hi}\nfirst = -(-lo // k) * k  # smallest multiple of k that is >= lo\n"
             "total = sum(range(first, hi + 1, k))\nprint(\"Sum:\", total)",
        label="Sum",
        solve=lambda n: _sum_multiples(n["k"], n["lo"], n["hi"]),
    ),
    Template(
        "digit_sum_power", "arithmetic", held_out=True,
        draw=lambda r: {"base": r.randint(3, 99), "exp": r.randint(50, 300)},
        question="What is the sum of the digits of {base}^{exp}?",
        plan="I need {base} to the power {exp} written out in full, then the sum of its digits.",
        code="base = {base}\nexponent = {exp}\nvalue = base ** exponent\n"
             "digit_sum = sum(int(ch) for ch in str(value))\nprint(\"Digit sum:\", digit_sum)",
        label="Digit sum",
        solve=lambda n: Fraction(sum(map(int, str(n["base"] ** n["exp"])))),
    ),
]

# ---- word problems ------------------------------------------------------------------------------

_WORD_PROBLEMS = [
    Template(
        "factory_boxes", "word_problem",
        draw=lambda r: {"per_day": r.randint(100_000, 2_000_000), "days": r.randint(7, 60), "box": r.randint(12, 500)},
        question="A factory produces {per_day:,} bolts a day. After {days} days, all the bolts are packed into boxes "
                 "of {box}. How many boxes can be filled completely?",
        plan="Total bolts = {per_day:,} a day × {days} days; the full boxes are that total divided by {box}, "
             "rounded down.",
        code="bolts_per_day = {per_day}\ndays = {days}\nbox_size = {box}\ntotal_bolts = bolts_per_day * days\n"
             "full_boxes = total_bolts // box_size\nprint(\"Full boxes:\", full_boxes)",
        label="Full boxes",
        solve=lambda n: Fraction(n["per_day"] * n["days"] // n["box"]),
    ),
    Template(
        "shopping_discount", "word_problem", decimals=2,
        draw=lambda r: {"qty": r.randint(1_000, 90_000), "price": _cents(r, 19, 1_500),
                        "disc": r.randint(5, 35), "tax": r.randint(3, 12)},
        question="A school district buys {qty:,} tablets at ${price:,.2f} each. The supplier takes {disc}% off the "
                 "whole order, and then {tax}% sales tax is added to the discounted amount. What is the final bill "
                 "in dollars? Round to 2 decimal places.",
        plan="Subtotal = {qty:,} × ${price:,.2f}; take off {disc}%, then add {tax}% tax to what remains.",
        code="quantity = {qty}\nunit_price = {price}\ndiscount_pct = {disc}\ntax_pct = {tax}\n"
             "subtotal = quantity * unit_price\ndiscounted = subtotal * (1 - discount_pct / 100)\n"
             "final_bill = discounted * (1 + tax_pct / 100)\nprint(f\"Final bill: {{final_bill:.2f}}\")",
        label="Final bill",
        solve=lambda n: n["qty"] * exact(n["price"]) * Fraction(100 - n["disc"], 100) * Fraction(100 + n["tax"], 100),
    ),
    Template(
        "train_distance", "word_problem",
        draw=lambda r: {"v1": r.randint(60, 320), "t1": r.randint(3, 19), "v2": r.randint(60, 320),
                        "t2": r.randint(3, 19), "trips": r.randint(50, 900)},
        question="A freight train runs at {v1} km/h for {t1} hours, then at {v2} km/h for {t2} hours. It makes this "
                 "run {trips} times a year. How many kilometres does it travel in a year?",
        plan="One run is {v1} × {t1} plus {v2} × {t2} kilometres; the year's distance is that times {trips}.",
        code="speed1 = {v1}\nhours1 = {t1}\nspeed2 = {v2}\nhours2 = {t2}\ntrips = {trips}\n"
             "per_run = speed1 * hours1 + speed2 * hours2\nyearly_km = per_run * trips\n"
             "print(\"Kilometres per year:\", yearly_km)",
        label="Kilometres per year",
        solve=lambda n: Fraction((n["v1"] * n["t1"] + n["v2"] * n["t2"]) * n["trips"]),
    ),
    Template(
        "seconds_conversion", "word_problem",
        draw=lambda r: {"days": r.randint(1_000, 99_999), "hours": r.randint(1, 23), "minutes": r.randint(1, 59)},
        question="How many seconds are there in {days:,} days, {hours} hours and {minutes} minutes?",
        plan="Convert {days:,} days, {hours} hours and {minutes} minutes to seconds (86,400 s a day, 3,600 s an hour, "
             "60 s a minute) and add them.",
        code="days = {days}\nhours = {hours}\nminutes = {minutes}\n"
             "seconds = days * 86400 + hours * 3600 + minutes * 60\nprint(\"Seconds:\", seconds)",
        label="Seconds",
        solve=lambda n: Fraction(((n["days"] * 24 + n["hours"]) * 60 + n["minutes"]) * 60),
    ),
    Template(
        "gallons_conversion", "word_problem", decimals=2,
        draw=lambda r: {"litres": r.randint(100_000, 90_000_000)},
        question="A reservoir holds {litres:,} litres of water. One US gallon is 3.785411784 litres. How many US "
                 "gallons does the reservoir hold? Round to 2 decimal places.",
        plan="Gallons = {litres:,} litres divided by 3.785411784 litres per gallon.",
        code="litres = {litres}\nlitres_per_gallon = 3.785411784\ngallons = litres / litres_per_gallon\n"
             "print(f\"Gallons: {{gallons:.2f}}\")",
        label="Gallons",
        solve=lambda n: n["litres"] / Fraction("3.785411784"),
    ),
    Template(
        "star_ages", "word_problem",
        draw=lambda r: {"a": r.randint(1_000_000, 9_000_000), "k": r.randint(3, 19), "m": r.randint(100_000, 999_999),
                        "y": r.randint(10_000, 900_000)},
        question="Star Alpha is {a:,} years old. Star Beta is {k} times as old as Alpha, minus {m:,} years. What will "
                 "the sum of their ages be {y:,} years from now?",
        plan="Beta's age is {k} × {a:,} − {m:,}; in {y:,} years each star is {y:,} years older, so add 2 × {y:,} to "
             "the sum of today's ages.",
        code="alpha_age = {a}\nfactor = {k}\nminus_years = {m}\nyears_ahead = {y}\n"
             "beta_age = factor * alpha_age - minus_years\n"
             "future_sum = (alpha_age + years_ahead) + (beta_age + years_ahead)\n"
             "print(\"Sum of ages:\", future_sum)",
        label="Sum of ages",
        solve=lambda n: Fraction(n["a"] + n["y"] + n["k"] * n["a"] - n["m"] + n["y"]),
    ),
    Template(
        "savings_months", "word_problem",
        draw=_draw_savings,
        question="Priya earns ${income:,} a month and spends ${spend:,} a month; she saves the rest. How many months "
                 "will it take her to save at least ${goal:,}?",
        plan="She saves ${income:,} − ${spend:,} a month; the months needed are ${goal:,} divided by that, rounded up.",
        code="income = {income}\nspending = {spend}\ngoal = {goal}\nsaved_per_month = income - spending\n"
             "months = -(-goal // saved_per_month)  # ceiling division\nprint(\"Months:\", months)",
        label="Months",
        solve=lambda n: Fraction(_ceil_div(n["goal"], n["income"] - n["spend"])),
    ),
    Template(
        "compound_interest", "word_problem", decimals=2,
        draw=lambda r: {"p": r.randint(10_000, 5_000_000), "r": r.randint(5, 36) / 4, "n": r.randint(5, 30)},
        question="An investor deposits ${p:,} in an account that pays {r:g}% interest a year, compounded annually. "
                 "How much is in the account after {n} years? Round to 2 decimal places.",
        plan="The balance is ${p:,} × (1 + {r:g}/100) to the power {n}.",
        code="principal = {p}\nrate_pct = {r}\nyears = {n}\nbalance = principal * (1 + rate_pct / 100) ** years\n"
             "print(f\"Balance: {{balance:.2f}}\")",
        label="Balance",
        solve=lambda n: n["p"] * (1 + exact(n["r"]) / 100) ** n["n"],
    ),
    Template(
        "fuel_cost", "word_problem", decimals=2,
        draw=lambda r: {"km": r.randint(50_000, 2_000_000), "l": r.randint(180, 420) / 10, "price": _cents(r, 1, 2)},
        question="A delivery fleet drives {km:,} km a month. Its trucks burn {l:g} litres of diesel per 100 km, and "
                 "diesel costs ${price:.2f} a litre. What is the monthly diesel bill? Round to 2 decimal places.",
        plan="Litres = {km:,} km / 100 × {l:g}; the bill is those litres × ${price:.2f}.",
        code="km = {km}\nlitres_per_100km = {l}\nprice_per_litre = {price}\n"
             "litres = km / 100 * litres_per_100km\nbill = litres * price_per_litre\n"
             "print(f\"Diesel bill: {{bill:.2f}}\")",
        label="Diesel bill",
        solve=lambda n: Fraction(n["km"], 100) * exact(n["l"]) * exact(n["price"]),
    ),
    Template(
        "prize_sharing", "word_problem", decimals=2, held_out=True,
        draw=lambda r: {"prize": r.randint(1_000_000, 90_000_000), "fee": r.randint(5, 25),
                        "winners": r.randint(7, 997)},
        question="A lottery jackpot of ${prize:,} is shared. The organisers keep {fee}% and the rest is split equally "
                 "among {winners} winners. How much does each winner get? Round to 2 decimal places.",
        plan="The winners share ${prize:,} minus {fee}% of it; each gets that amount divided by {winners}.",
        code="jackpot = {prize}\nfee_pct = {fee}\nwinners = {winners}\nshared = jackpot * (1 - fee_pct / 100)\n"
             "per_winner = shared / winners\nprint(f\"Per winner: {{per_winner:.2f}}\")",
        label="Per winner",
        solve=lambda n: n["prize"] * Fraction(100 - n["fee"], 100) / n["winners"],
    ),
    Template(
        "pipes_fill", "word_problem", held_out=True,
        draw=lambda r: {"a": r.randint(500, 9_000), "b": r.randint(500, 9_000),
                        "cap": r.randint(1_000_000, 50_000_000)},
        question="Pump A moves {a:,} litres an hour and pump B moves {b:,} litres an hour. Working together, how many "
                 "hours do they need to fill a {cap:,}-litre reservoir? Count a partly used last hour as a whole hour.",
        plan="Together they move {a:,} + {b:,} litres an hour; the hours are {cap:,} divided by that, rounded up.",
        code="pump_a = {a}\npump_b = {b}\ncapacity = {cap}\nper_hour = pump_a + pump_b\n"
             "hours = -(-capacity // per_hour)  # ceiling division\nprint(\"Hours:\", hours)",
        label="Hours",
        solve=lambda n: Fraction(_ceil_div(n["cap"], n["a"] + n["b"])),
    ),
    Template(
        "orchard_leftover", "word_problem", held_out=True,
        draw=lambda r: {"rows": r.randint(40, 400), "per_row": r.randint(30, 300), "apples": r.randint(150, 900),
                        "crate": r.randint(24, 96)},
        question="An orchard has {rows} rows of {per_row} apple trees, and each tree gives {apples} apples. The apples "
                 "are packed into crates of {crate}. How many apples are left over after filling as many full crates "
                 "as possible?",
        plan="Total apples = {rows} × {per_row} × {apples}; the leftover is that total modulo {crate}.",
        code="rows = {rows}\ntrees_per_row = {per_row}\napples_per_tree = {apples}\ncrate_size = {crate}\n"
             "total_apples = rows * trees_per_row * apples_per_tree\nleftover = total_apples % crate_size\n"
             "print(\"Leftover apples:\", leftover)",
        label="Leftover apples",
        solve=lambda n: Fraction(n["rows"] * n["per_row"] * n["apples"] % n["crate"]),
    ),
]

# ---- sequences ----------------------------------------------------------------------------------

_SEQUENCES = [
    Template(
        "arithmetic_series_sum", "sequence",
        draw=lambda r: {"a": r.randint(100, 99_999), "d": r.randint(3, 9_999), "n": r.randint(1_000, 99_999)},
        question="An arithmetic sequence starts at {a:,} and each term is {d:,} more than the one before. What is the "
                 "sum of its first {n:,} terms?",
        plan="The terms are {a:,} + i × {d:,} for i = 0 … {n:,} − 1; I add them up.",
        code="first = {a}\nstep = {d}\ncount = {n}\ntotal = sum(first + i * step for i in range(count))\n"
             "print(\"Sum:\", total)",
        label="Sum",
        solve=lambda n: Fraction(n["n"] * (2 * n["a"] + (n["n"] - 1) * n["d"]), 2),
    ),
    Template(
        "arithmetic_nth_term", "sequence",
        draw=lambda r: {"a": r.randint(100, 99_999), "d": r.randint(3, 9_999), "n": r.randint(1_000, 999_999)},
        extra=_arithmetic_terms,
        question="What is the {nth} term of the arithmetic sequence {t1}, {t2}, {t3}, …?",
        plan="The common difference is {t2} − {t1}; the {nth} term is {t1} plus {n:,} − 1 differences.",
        code="first = {t1}\nstep = {t2} - {t1}\nn = {n}\nterm = first + (n - 1) * step\nprint(\"Term:\", term)",
        label="Term",
        solve=lambda n: Fraction(n["a"] + (n["n"] - 1) * n["d"]),
    ),
    Template(
        "geometric_nth_term", "sequence",
        draw=lambda r: {"a": r.randint(2, 999), "r": r.randint(2, 9), "n": r.randint(20, 60)},
        extra=_nth,
        question="A geometric sequence starts at {a} and each term is {r} times the one before. "
                 "What is its {nth} term?",
        plan="The {nth} term is {a} × {r} to the power {n} − 1.",
        code="first = {a}\nratio = {r}\nn = {n}\nterm = first * ratio ** (n - 1)\nprint(\"Term:\", term)",
        label="Term",
        solve=lambda n: Fraction(n["a"] * n["r"] ** (n["n"] - 1)),
    ),
    Template(
        "geometric_series_sum", "sequence",
        draw=lambda r: {"a": r.randint(2, 99), "r": r.randint(2, 9), "n": r.randint(15, 45)},
        extra=_geometric_terms,
        question="What is the sum of the first {n} terms of the geometric sequence {t1}, {t2}, {t3}, …?",
        plan="The ratio is {t2} / {t1} = {r}; I add the first {n} terms {t1} × {r}^i.",
        code="first = {t1}\nratio = {r}\ncount = {n}\ntotal = sum(first * ratio ** i for i in range(count))\n"
             "print(\"Sum:\", total)",
        label="Sum",
        solve=lambda n: Fraction(n["a"] * (n["r"] ** n["n"] - 1), n["r"] - 1),
    ),
    Template(
        "two_term_recurrence", "sequence", held_out=True,
        draw=lambda r: {"x1": r.randint(1, 999), "x2": r.randint(1, 999), "n": r.randint(40, 90)},
        extra=_nth,
        question="A sequence starts {x1}, {x2}, and every later term is the sum of the two terms before it. What is "
                 "its {nth} term?",
        plan="Starting from {x1} and {x2}, I step the pair forward until I reach term {n}.",
        code="prev, curr = {x1}, {x2}  # terms 1 and 2\nn = {n}\nfor _ in range(n - 2):\n"
             "    prev, curr = curr, prev + curr\nprint(\"Term:\", curr)",
        label="Term",
        solve=lambda n: Fraction(_recurrence(n["x1"], n["x2"], n["n"])),
    ),
    Template(
        "sum_of_squares", "sequence", held_out=True,
        draw=lambda r: {"n": r.randint(1_000, 200_000)},
        question="What is 1² + 2² + 3² + … + {n:,}²?",
        plan="I need the sum of i squared for i from 1 to {n:,}.",
        code="n = {n}\ntotal = sum(i * i for i in range(1, n + 1))\nprint(\"Sum:\", total)",
        label="Sum",
        solve=lambda n: Fraction(n["n"] * (n["n"] + 1) * (2 * n["n"] + 1), 6),
    ),
]


def _recurrence(x1: int, x2: int, n: int) -> int:
    prev, curr = x1, x2
    for _ in range(n - 2):
        prev, curr = curr, prev + curr
    return curr


TEMPLATES: dict[str, Template] = {t.name: t for t in _ARITHMETIC + _WORD_PROBLEMS + _SEQUENCES}
HELD_OUT = frozenset(name for name, t in TEMPLATES.items() if t.held_out)


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise KeyError(f"unknown math template {name!r}; available: {', '.join(TEMPLATES)}") from None
