"""Programmatic labels for the bundled sample (``sample_path()``, made by scripts/make_sample.py).

:func:`check_row` recomputes each task's answer from the row's ``meta`` and this module's own
tables (and checks the prompt states the same problem), then says whether ``chosen`` is right and
``rejected`` is wrong. It shares no code or data with the generator, so it checks the generator
rather than repeating it: a slip in either copy of a table makes a row fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")
_OPS: dict[str, Callable[[int, int], int]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b,
}
_CODE = re.compile(r"```python\n(.*?)```", re.DOTALL)
_SAFE_BUILTINS = {"sum": sum, "range": range, "len": len, "max": max, "min": min, "abs": abs}

# country -> capital (the prompt may put "the" before the country)
_CAPITALS = {
    "Japan": "Tokyo", "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid",
    "Portugal": "Lisbon", "United Kingdom": "London", "Ireland": "Dublin", "Belgium": "Brussels",
    "Austria": "Vienna", "Poland": "Warsaw", "Czech Republic": "Prague", "Hungary": "Budapest",
    "Greece": "Athens", "Sweden": "Stockholm", "Norway": "Oslo", "Denmark": "Copenhagen",
    "Finland": "Helsinki", "Iceland": "Reykjavik", "Russia": "Moscow", "Ukraine": "Kyiv",
    "Romania": "Bucharest", "Bulgaria": "Sofia", "Serbia": "Belgrade", "Croatia": "Zagreb",
    "Slovakia": "Bratislava", "Slovenia": "Ljubljana", "Estonia": "Tallinn", "Latvia": "Riga",
    "Lithuania": "Vilnius", "Albania": "Tirana", "Turkey": "Ankara", "Egypt": "Cairo",
    "Morocco": "Rabat", "Algeria": "Algiers", "Tunisia": "Tunis", "Libya": "Tripoli",
    "Kenya": "Nairobi", "Ethiopia": "Addis Ababa", "Nigeria": "Abuja", "Ghana": "Accra",
    "Senegal": "Dakar", "Uganda": "Kampala", "Zimbabwe": "Harare", "Zambia": "Lusaka",
    "Angola": "Luanda", "Sudan": "Khartoum", "Somalia": "Mogadishu", "Rwanda": "Kigali",
    "Madagascar": "Antananarivo", "China": "Beijing", "India": "New Delhi", "Pakistan": "Islamabad",
    "Bangladesh": "Dhaka", "Nepal": "Kathmandu", "Thailand": "Bangkok", "Vietnam": "Hanoi",
    "Philippines": "Manila", "South Korea": "Seoul", "North Korea": "Pyongyang",
    "Mongolia": "Ulaanbaatar", "Afghanistan": "Kabul", "Iran": "Tehran", "Iraq": "Baghdad",
    "Saudi Arabia": "Riyadh", "Syria": "Damascus", "Jordan": "Amman", "Lebanon": "Beirut",
    "Qatar": "Doha", "Cambodia": "Phnom Penh", "Laos": "Vientiane", "Georgia": "Tbilisi",
    "Armenia": "Yerevan", "Azerbaijan": "Baku", "Australia": "Canberra", "New Zealand": "Wellington",
    "Canada": "Ottawa", "United States": "Washington, D.C.", "Mexico": "Mexico City", "Cuba": "Havana",
    "Jamaica": "Kingston", "Argentina": "Buenos Aires", "Brazil": "Brasília", "Chile": "Santiago",
    "Peru": "Lima", "Colombia": "Bogotá", "Venezuela": "Caracas", "Ecuador": "Quito",
    "Uruguay": "Montevideo", "Costa Rica": "San José",
}
# word -> every answer accepted as its opposite
_ANTONYMS = {
    "hot": {"cold"}, "big": {"small", "little"}, "fast": {"slow"}, "happy": {"sad", "unhappy"},
    "rich": {"poor"}, "strong": {"weak"}, "early": {"late"}, "open": {"closed", "shut"},
    "wet": {"dry"}, "young": {"old"}, "modern": {"ancient", "old-fashioned", "outdated"},
    "empty": {"full"}, "clean": {"dirty"}, "loud": {"quiet", "soft", "silent"}, "brave": {"cowardly"},
    "true": {"false", "untrue"}, "win": {"lose", "fail"}, "begin": {"end", "finish"},
    "accept": {"refuse", "reject", "decline"}, "increase": {"decrease", "reduce"},
    "remember": {"forget"}, "arrive": {"depart", "leave"}, "buy": {"sell"}, "love": {"hate"},
    "friend": {"enemy", "foe"}, "victory": {"defeat", "loss"}, "above": {"below", "beneath", "under"},
    "inside": {"outside"}, "heavy": {"light"}, "wide": {"narrow"}, "thick": {"thin"},
    "deep": {"shallow"}, "sharp": {"blunt", "dull"}, "smooth": {"rough"},
    "cheap": {"expensive", "costly", "dear"}, "generous": {"stingy", "mean", "selfish"},
    "polite": {"rude", "impolite"}, "honest": {"dishonest"}, "safe": {"dangerous", "unsafe"},
    "beautiful": {"ugly"}, "clever": {"stupid", "foolish", "dim"}, "success": {"failure"},
    "push": {"pull"}, "give": {"take", "receive"}, "question": {"answer", "reply"},
    "maximum": {"minimum"}, "majority": {"minority"}, "visible": {"invisible"}, "entrance": {"exit"},
    "ascend": {"descend"}, "shout": {"whisper"}, "laugh": {"cry", "weep"}, "sweet": {"sour", "bitter"},
    "tight": {"loose", "slack"}, "awake": {"asleep"}, "permanent": {"temporary"},
    "guilty": {"innocent"}, "frequent": {"rare", "infrequent"}, "expand": {"contract", "shrink"},
    "include": {"exclude", "omit"}, "rise": {"fall", "sink", "drop"}, "difficult": {"easy", "simple"},
    "dark": {"light", "bright"}, "long": {"short"}, "high": {"low"}, "near": {"far", "distant"},
    "always": {"never"}, "before": {"after"}, "day": {"night"}, "top": {"bottom"}, "major": {"minor"},
    "public": {"private"}, "positive": {"negative"}, "wise": {"foolish"}, "kind": {"cruel", "unkind"},
    "alive": {"dead"}, "lazy": {"hardworking", "diligent", "industrious"},
    "timid": {"bold", "confident", "brave"}, "fresh": {"stale", "rotten"},
    "careful": {"careless", "reckless"}, "attack": {"defend", "defence", "defense"},
    "interior": {"exterior"}, "teach": {"learn"}, "obey": {"disobey", "defy"}, "former": {"latter"},
}
# category -> (how a prompt names it, its members); no word is in two categories
_MEMBERS = {
    "fruit": ("fruit", {
        "apple", "banana", "cherry", "mango", "pear", "peach", "plum", "grape", "lemon", "pineapple",
        "strawberry", "apricot", "watermelon", "papaya", "raspberry", "blueberry"}),
    "vegetable": ("vegetable", {
        "carrot", "potato", "onion", "cabbage", "broccoli", "spinach", "lettuce", "celery",
        "cauliflower", "radish", "turnip", "garlic", "parsnip", "asparagus", "leek", "beetroot"}),
    "musical instrument": ("musical instrument", {
        "violin", "piano", "guitar", "trumpet", "flute", "drum", "cello", "clarinet", "saxophone",
        "harp", "trombone", "oboe", "banjo", "accordion", "ukulele", "tuba"}),
    "mammal": ("mammal", {
        "elephant", "tiger", "lion", "giraffe", "zebra", "horse", "dog", "cat", "whale", "dolphin",
        "bear", "wolf", "kangaroo", "rabbit", "monkey", "camel"}),
    "bird": ("bird", {
        "eagle", "sparrow", "owl", "penguin", "parrot", "robin", "pigeon", "swan", "crow", "flamingo",
        "ostrich", "falcon", "hawk", "peacock", "seagull", "woodpecker"}),
    "fish": ("fish", {
        "salmon", "trout", "tuna", "cod", "shark", "goldfish", "carp", "herring", "sardine",
        "mackerel", "haddock", "halibut", "catfish", "anchovy", "swordfish", "pike"}),
    "sport": ("sport", {
        "football", "tennis", "basketball", "baseball", "golf", "hockey", "rugby", "volleyball",
        "boxing", "badminton", "cycling", "skiing", "archery", "wrestling", "swimming", "fencing"}),
    "tool": ("tool", {
        "hammer", "screwdriver", "wrench", "saw", "drill", "pliers", "chisel", "shovel", "rake", "axe",
        "mallet", "crowbar", "trowel", "hoe"}),
    "vehicle": ("vehicle", {
        "car", "bus", "truck", "bicycle", "motorcycle", "train", "tram", "van", "tractor", "scooter",
        "taxi", "ambulance", "lorry", "helicopter"}),
    "furniture": ("piece of furniture", {
        "chair", "table", "sofa", "bed", "desk", "wardrobe", "bookshelf", "stool", "dresser",
        "cabinet", "bench", "armchair", "cupboard", "couch"}),
    "clothing": ("item of clothing", {
        "shirt", "trousers", "jacket", "coat", "dress", "skirt", "sweater", "scarf", "sock", "hat",
        "glove", "jeans", "blouse", "shorts"}),
    "flower": ("flower", {
        "rose", "tulip", "daisy", "lily", "sunflower", "orchid", "daffodil", "carnation", "poppy",
        "marigold", "peony", "dandelion", "hyacinth", "jasmine", "begonia", "chrysanthemum"}),
}
# correctly spelled word -> the meaning a prompt may give instead of the word
_SPELLINGS = {
    "accommodate": "provide lodging for", "achieve": "succeed in doing",
    "acquire": "gain possession of", "address": "where someone lives",
    "apparent": "clearly seen or understood", "argument": "a heated disagreement",
    "basically": "in essence", "beginning": "the start of something", "believe": "accept as true",
    "calendar": "a chart of the days and months", "cemetery": "a burial ground",
    "colleague": "a coworker", "committee": "a group appointed for a task",
    "conscience": "the inner sense of right and wrong", "conscious": "awake and aware",
    "definitely": "without doubt", "disappear": "vanish", "embarrass": "make someone feel awkward",
    "environment": "the natural world", "existence": "the state of being", "familiar": "well known",
    "foreign": "from another country", "forty": "the number 40",
    "friend": "a person you like and trust", "government": "the body that rules a country",
    "grammar": "the rules of a language", "guarantee": "a formal promise",
    "harass": "pester repeatedly", "height": "how tall something is", "immediately": "at once",
    "independent": "free from outside control", "knowledge": "facts and understanding",
    "leisure": "free time", "library": "a place for borrowing books", "maintenance": "upkeep",
    "millennium": "a thousand years", "mischievous": "playfully naughty", "necessary": "required",
    "noticeable": "easy to see", "occasion": "a special event", "occurred": "happened",
    "parliament": "a national law-making assembly", "pastime": "a hobby",
    "persistent": "continuing firmly", "possession": "something you own",
    "privilege": "a special right", "pronunciation": "the way a word is said", "publicly": "in public",
    "receive": "get or be given", "recommend": "suggest as good", "relevant": "closely connected",
    "rhythm": "a regular repeated beat", "separate": "apart", "successful": "achieving its aim",
    "surprise": "something unexpected", "tomorrow": "the day after today", "truly": "really",
    "until": "up to the time when", "weird": "strange", "withhold": "hold back",
    "business": "a company", "category": "a class or group", "gauge": "a measuring instrument",
    "hygiene": "cleanliness", "interrupt": "break in on",
    "questionnaire": "a set of written questions", "seize": "grab suddenly",
    "threshold": "the sill of a doorway", "unnecessary": "not needed", "vicious": "cruel and violent",
    "equipment": "the tools needed for a job", "village": "a small settlement",
    "beautiful": "very pretty", "develop": "grow or improve", "writing": "putting words on paper",
    "across": "from one side to the other", "among": "in the midst of", "already": "before now",
    "welcome": "a friendly greeting", "careful": "taking care", "ninth": "coming after the eighth",
    "temperature": "how hot or cold something is", "sentence": "a group of words expressing a thought",
    "medicine": "a drug that treats illness", "dilemma": "a difficult choice",
    "hierarchy": "a ranking system", "piece": "a part of something", "exaggerate": "overstate",
}


def check_row(row: dict) -> bool:
    """True when ``chosen`` answers the row's problem correctly and ``rejected`` does not.

    ``meta`` may be a dict or its JSON text (as after a CSV round trip). Any malformed row
    yields False rather than an exception.
    """
    meta = row["meta"] if isinstance(row["meta"], dict) else json.loads(row["meta"])
    judge = _JUDGES.get(meta.get("task"))
    if judge is None:
        return False
    try:
        prompt = row["prompt"]
        return bool(judge(prompt, meta, row["chosen"])) and not judge(prompt, meta, row["rejected"])
    except (KeyError, ValueError, TypeError, IndexError, ZeroDivisionError, AttributeError):
        return False


def check_response(row: dict, side: str) -> bool:
    """True when the row's ``side`` (``"chosen"`` or ``"rejected"``) answers its problem correctly:
    the per-response verdict :func:`check_row` combines. Malformed rows yield False."""
    if side not in ("chosen", "rejected"):
        raise ValueError(f"side must be 'chosen' or 'rejected', got {side!r}")
    try:
        meta = row["meta"] if isinstance(row["meta"], dict) else json.loads(row["meta"])
        judge = _JUDGES.get(meta.get("task"))
        return judge is not None and bool(judge(row["prompt"], meta, row[side]))
    except (KeyError, ValueError, TypeError, IndexError, ZeroDivisionError, AttributeError):
        return False


def _numbers(text: str) -> list[str]:
    """The numbers written in ``text``, in order."""
    return _NUMBER.findall(text)


def _mentions(text: str, phrase: str) -> bool:
    """``phrase`` occurs in ``text`` as whole words ("Tunis" is not in "Tunisia")."""
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def _last_word(text: str) -> str:
    """The last word of ``text``, lower-cased (the answer in every sentence the sample uses)."""
    return _WORD.findall(text)[-1].lower()


def _capitals(prompt: str, meta: dict, response: str) -> bool:
    country = meta["country"]
    named = {city for city in _CAPITALS.values() if _mentions(response, city)}
    return _mentions(prompt, country) and named == {_CAPITALS[country]}


def _opposites(prompt: str, meta: dict, response: str) -> bool:
    word = meta["word"]
    return f"'{word}'" in prompt and _last_word(response) in _ANTONYMS[word]


def _categories(prompt: str, meta: dict, response: str) -> bool:
    phrase, members = _MEMBERS[meta["category"]]
    exclude = meta.get("exclude")
    states = _mentions(prompt, phrase) and (exclude is None or _mentions(prompt, exclude))
    answer = _last_word(response)
    return states and answer in members and answer != exclude


def _spelling(prompt: str, meta: dict, response: str) -> bool:
    word = meta["word"]
    states = f"'{_SPELLINGS[word]}'" in prompt or f"'{word}'" in prompt
    return states and _last_word(response) == word


def _arithmetic(prompt: str, meta: dict, response: str) -> bool:
    a, b, op = meta["a"], meta["b"], meta["op"]
    states = _numbers(prompt) == [str(a), str(b)]
    return states and int(_numbers(response)[-1]) == _OPS[op](a, b)


def _sorting(prompt: str, meta: dict, response: str) -> bool:
    numbers = meta["numbers"]
    expected = sorted(numbers, reverse=meta["order"] == "descending")
    states = [int(n) for n in _numbers(prompt)] == numbers and meta["order"] in prompt
    return states and [int(n) for n in _numbers(response)] == expected


def _python(prompt: str, meta: dict, response: str) -> bool:
    name = meta["function"]
    code = _CODE.search(response)
    if f"{name}(" not in prompt or code is None:
        return False
    namespace: dict[str, Any] = {"__builtins__": _SAFE_BUILTINS}
    try:
        exec(code.group(1), namespace)  # the sample's own tiny functions, with a few builtins only
        return all(namespace[name](*args) == expected for args, expected in meta["tests"])
    except Exception:  # a buggy response may raise: that is a failed test, not a checker error
        return False


_JUDGES: dict[str, Callable[[str, dict, str], bool]] = {
    "capitals": _capitals,
    "opposites": _opposites,
    "categories": _categories,
    "spelling": _spelling,
    "arithmetic": _arithmetic,
    "sorting": _sorting,
    "python": _python,
}
