"""Linkage of Chinese records: simplified and traditional characters, pinyin, full-width forms, resident IDs.

Generates two hospitals' patient lists with known truth and scores them with :mod:`benchmarks.linkage`
(the CSV files are written to ``--out``, so the same figures come from the generic CLI too). The
population: family names with their approximate shares in China (the compound and polyphonic ones
included), one- or two-character given names from common name characters, birth dates 1930-2020,
18-digit resident ID numbers with region, birth date, sex digit and a valid check character, addresses
in eight cities. Every character's traditional form and pinyin come from the tables here, not from the
libraries the recipe uses, so the benchmark does not grade the recipe against itself.

Hospital A writes most names in simplified characters (some traditional, some pinyin). Hospital B holds
some of A's patients, written the way a second registration differs: traditional characters, pinyin
only (``Xiao Ming``, ``XIAO-MING``, ``ü`` as ``u`` or ``v``), family and given name in the wrong fields,
full-width digits, grouped or first-generation 15-digit ID numbers, a mistyped ID, no ID, another date
format, day and month exchanged, a new address. B also holds people A never saw, drawn from the same
population, so that namesakes born on the same day are there to be confused.

Usage: python -m benchmarks.linkage_chinese [--people-a 20000] [--people-b 10000] [--overlap 0.7]
    [--seed 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/NAME.py): put the repo root on sys.path
    import _script  # type: ignore[import-not-found]  # noqa: F401  # benchmarks/_script.py

from benchmarks.linkage import calibrated_rule, evaluate, load_records, load_truth, parse_map
from common.linkage.demographics import CN_RESIDENT_ID_SYSTEM
from common.linkage.matching import DEFAULT_RULE
from common.linkage.national_id import resident_id_check_character

__all__ = ["CHINESE_MAP", "Person", "draw_person", "write_sites"]

# (simplified, traditional, pinyin, share in per mille): the largest family names, then rarer ones whose
# surname reading differs from the character's usual one, then two compound names.
_FAMILY = (
    ("王", "王", "wang", 71), ("李", "李", "li", 70), ("张", "張", "zhang", 68), ("刘", "劉", "liu", 54),
    ("陈", "陳", "chen", 46), ("杨", "楊", "yang", 31), ("黄", "黃", "huang", 22), ("赵", "趙", "zhao", 20),
    ("吴", "吳", "wu", 20), ("周", "周", "zhou", 19), ("徐", "徐", "xu", 15), ("孙", "孫", "sun", 14),
    ("马", "馬", "ma", 12), ("朱", "朱", "zhu", 12), ("胡", "胡", "hu", 11), ("郭", "郭", "guo", 11),
    ("何", "何", "he", 11), ("高", "高", "gao", 10), ("林", "林", "lin", 10), ("罗", "羅", "luo", 9),
    ("郑", "鄭", "zheng", 9), ("梁", "梁", "liang", 8), ("谢", "謝", "xie", 7), ("宋", "宋", "song", 6),
    ("唐", "唐", "tang", 6), ("许", "許", "xu", 6), ("韩", "韓", "han", 6), ("冯", "馮", "feng", 5),
    ("邓", "鄧", "deng", 5), ("曹", "曹", "cao", 5), ("彭", "彭", "peng", 5), ("曾", "曾", "zeng", 5),
    ("肖", "肖", "xiao", 5), ("田", "田", "tian", 4), ("董", "董", "dong", 4), ("袁", "袁", "yuan", 4),
    ("潘", "潘", "pan", 4), ("于", "於", "yu", 4), ("蒋", "蔣", "jiang", 4), ("蔡", "蔡", "cai", 4),
    ("吕", "呂", "lü", 3), ("叶", "葉", "ye", 3), ("苏", "蘇", "su", 3), ("卢", "盧", "lu", 3),
    ("单", "單", "shan", 1), ("仇", "仇", "qiu", 1), ("区", "區", "ou", 1), ("解", "解", "xie", 1),
    ("欧阳", "歐陽", "ouyang", 1), ("司马", "司馬", "sima", 1),
)  # fmt: skip
# (simplified, traditional, pinyin) of common given-name characters.
_GIVEN = (
    ("伟", "偉", "wei"), ("芳", "芳", "fang"), ("娜", "娜", "na"), ("敏", "敏", "min"), ("静", "靜", "jing"),
    ("丽", "麗", "li"), ("强", "強", "qiang"), ("磊", "磊", "lei"), ("军", "軍", "jun"), ("洋", "洋", "yang"),
    ("勇", "勇", "yong"), ("艳", "艷", "yan"), ("杰", "傑", "jie"), ("娟", "娟", "juan"), ("涛", "濤", "tao"),
    ("明", "明", "ming"), ("超", "超", "chao"), ("秀", "秀", "xiu"), ("霞", "霞", "xia"), ("平", "平", "ping"),
    ("刚", "剛", "gang"), ("桂", "桂", "gui"), ("英", "英", "ying"), ("华", "華", "hua"), ("玉", "玉", "yu"),
    ("兰", "蘭", "lan"), ("建", "建", "jian"), ("国", "國", "guo"), ("文", "文", "wen"), ("红", "紅", "hong"),
    ("志", "志", "zhi"), ("海", "海", "hai"), ("金", "金", "jin"), ("小", "小", "xiao"), ("春", "春", "chun"),
    ("梅", "梅", "mei"), ("林", "林", "lin"), ("云", "雲", "yun"), ("丹", "丹", "dan"), ("鹏", "鵬", "peng"),
    ("飞", "飛", "fei"), ("宇", "宇", "yu"), ("浩", "浩", "hao"), ("婷", "婷", "ting"), ("雪", "雪", "xue"),
    ("琳", "琳", "lin"), ("晨", "晨", "chen"), ("欣", "欣", "xin"), ("怡", "怡", "yi"), ("佳", "佳", "jia"),
    ("子", "子", "zi"), ("涵", "涵", "han"), ("轩", "軒", "xuan"), ("博", "博", "bo"), ("睿", "睿", "rui"),
    ("思", "思", "si"), ("雨", "雨", "yu"), ("诗", "詩", "shi"), ("嘉", "嘉", "jia"), ("东", "東", "dong"),
    ("龙", "龍", "long"), ("凤", "鳳", "feng"), ("宁", "寧", "ning"), ("安", "安", "an"), ("庆", "慶", "qing"),
    ("德", "德", "de"), ("福", "福", "fu"), ("荣", "榮", "rong"), ("燕", "燕", "yan"), ("颖", "穎", "ying"),
    ("晓", "曉", "xiao"), ("辉", "輝", "hui"), ("斌", "斌", "bin"), ("鑫", "鑫", "xin"), ("倩", "倩", "qian"),
)  # fmt: skip
# (region code, city, district, postcode prefix).
_REGIONS = (
    ("110101", "北京市", "东城区", "1000"), ("310104", "上海市", "徐汇区", "2000"),
    ("440106", "广州市", "天河区", "5106"), ("510107", "成都市", "武侯区", "6100"),
    ("330106", "杭州市", "西湖区", "3100"), ("420106", "武汉市", "武昌区", "4300"),
    ("320102", "南京市", "玄武区", "2100"), ("610113", "西安市", "雁塔区", "7100"),
)  # fmt: skip
_STREETS = ("人民路", "解放路", "中山路", "建设路", "和平路", "新华路", "长江路", "文化路", "胜利路", "光明街")
_TRADITIONAL_PLACES = {"东": "東", "区": "區", "广": "廣", "汉": "漢", "设": "設", "华": "華", "长": "長", "胜": "勝"}

#: The CSV columns of the generated files, as a ``--map`` for :mod:`benchmarks.linkage`.
CHINESE_MAP = (
    "id=rec_id,family=family,given=given,sex=sex,birth_date=birth_date,national_id=resident_id,"
    "national_id_system=id_type,postcode=postcode,locality=district,street=street,street_number=number"
)
_COLUMNS = (
    "rec_id", "family", "given", "sex", "birth_date", "resident_id", "id_type", "postcode", "district", "street",
    "number",
)  # fmt: skip


@dataclass
class Person:
    """One generated person: names as (simplified, traditional, pinyin) triples, and the facts."""

    family: tuple[str, str, str]
    given: list[tuple[str, str, str]]
    sex: str
    birth: date
    resident_id: str
    region: tuple[str, str, str, str]
    street: str
    number: int
    postcode: str


def _full_width(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def draw_person(rng: random.Random) -> Person:
    """A random person of the generated population."""
    family = rng.choices(_FAMILY, weights=[row[3] for row in _FAMILY])[0][:3]
    size = 1 if rng.random() < 0.3 else 2
    weights = [1 / (rank + 1) ** 0.6 for rank in range(len(_GIVEN))]
    given = rng.choices(_GIVEN, weights=weights, k=size)
    sex = rng.choice(("m", "f"))
    birth = date(1930, 1, 1) + timedelta(days=rng.randrange(90 * 365))
    birth_region = rng.choice(_REGIONS)
    sequence = rng.randrange(50) * 20 + rng.randrange(10) * 2 + (1 if sex == "m" else 0)
    first17 = f"{birth_region[0]}{birth:%Y%m%d}{sequence:03d}"
    region = birth_region if rng.random() < 0.7 else rng.choice(_REGIONS)
    return Person(
        family=family,
        given=list(given),
        sex=sex,
        birth=birth,
        resident_id=first17 + resident_id_check_character(first17),
        region=region,
        street=rng.choice(_STREETS),
        number=rng.randint(1, 300),
        postcode=region[3] + f"{rng.randrange(100):02d}",
    )


def _pinyin_spelling(rng: random.Random, syllables: list[str]) -> str:
    syllables = [s.replace("ü", rng.choice(("ü", "u", "v", "yu"))) for s in syllables]
    style = rng.random()
    if style < 0.5:
        text = "".join(syllables).capitalize()
    elif style < 0.75:
        text = " ".join(s.capitalize() for s in syllables)
    elif style < 0.9:
        text = "-".join(syllables).upper()
    else:
        text = "".join(syllables).lower()
    return text


def _names(rng: random.Random, person: Person, script: str) -> tuple[str, str]:
    if script == "pinyin":
        family = _pinyin_spelling(rng, [person.family[2]])
        given = _pinyin_spelling(rng, [part[2] for part in person.given])
        return family, given
    column = 0 if script == "simplified" else 1
    return person.family[column], "".join(part[column] for part in person.given)


def _place(text: str, traditional: bool) -> str:
    return "".join(_TRADITIONAL_PLACES.get(ch, ch) for ch in text) if traditional else text


def record(rng: random.Random, person: Person, *, site: str, record_id: str) -> dict[str, str]:
    """How ``site`` ("a" or "b") writes ``person``: a CSV row."""
    if site == "a":
        script = rng.choices(("simplified", "traditional", "pinyin"), weights=(85, 5, 10))[0]
    else:
        script = rng.choices(("simplified", "traditional", "pinyin"), weights=(40, 20, 40))[0]
    family, given = _names(rng, person, script)
    if site == "b" and rng.random() < 0.04:
        family, given = given, family
    birth = person.birth
    if site == "b" and rng.random() < 0.01 and birth.day <= 12 and birth.day != birth.month:
        birth = date(birth.year, birth.day, birth.month)
    birth_format = rng.choice(("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "chinese")) if site == "b" else "%Y-%m-%d"
    birth_text = (
        f"{birth.year}年{birth.month}月{birth.day}日" if birth_format == "chinese" else f"{birth:{birth_format}}"
    )
    if rng.random() < 0.03:
        birth_text = ""
    resident_id = person.resident_id
    if site == "b":
        if person.birth.year < 1990 and rng.random() < 0.1:
            resident_id = resident_id[:6] + resident_id[8:17]  # first-generation 15-digit number
        if rng.random() < 0.1:
            resident_id = f"{resident_id[:6]} {resident_id[6:14]} {resident_id[14:]}"
        if rng.random() < 0.25:
            resident_id = _full_width(resident_id)
        if rng.random() < 0.03:
            position = rng.randrange(6, 14)
            resident_id = (
                resident_id[:position] + str((int(person.resident_id[position]) + 1) % 10) + resident_id[position + 1 :]
            )
        resident_id = resident_id.lower() if rng.random() < 0.5 else resident_id
    present = 0.85 if site == "a" else 0.8
    if rng.random() > present:
        resident_id = ""
    region, street, number, postcode = person.region, person.street, person.number, person.postcode
    if site == "b" and rng.random() < 0.15:  # moved
        moved = draw_person(rng)
        region, street, number, postcode = moved.region, moved.street, moved.number, moved.postcode
    if site == "b" and rng.random() < 0.2:
        postcode = _full_width(postcode)
    traditional = script == "traditional"
    sex = {"m": rng.choice(("男", "M", "male")), "f": rng.choice(("女", "F", "female"))}[person.sex]
    return {
        "rec_id": record_id,
        "family": family,
        "given": given,
        "sex": sex,
        "birth_date": birth_text,
        "resident_id": resident_id,
        "id_type": CN_RESIDENT_ID_SYSTEM if resident_id else "",
        "postcode": postcode,
        "district": _place(region[1] + region[2], traditional),
        "street": _place(street, traditional),
        "number": f"{number}号",
    }


def write_sites(out: Path, *, people_a: int, people_b: int, overlap: float, seed: int) -> tuple[Path, Path, Path]:
    """Write ``a.csv``, ``b.csv`` and ``truth.csv`` (columns ``rec_id_a, rec_id_b``) into ``out``."""
    rng = random.Random(seed)
    population_a = [draw_person(rng) for _ in range(people_a)]
    shared = rng.sample(range(people_a), min(int(people_b * overlap), people_a))
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / "a.csv", out / "b.csv", out / "truth.csv")
    with paths[0].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, _COLUMNS)
        writer.writeheader()
        for number, person in enumerate(population_a):
            writer.writerow(record(rng, person, site="a", record_id=f"a-{number}"))
    truth = []
    with paths[1].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, _COLUMNS)
        writer.writeheader()
        for number in range(people_b):
            if number < len(shared):
                person, record_id = population_a[shared[number]], f"b-{number}"
                truth.append((f"a-{shared[number]}", record_id))
            else:
                person, record_id = draw_person(rng), f"b-{number}"
            writer.writerow(record(rng, person, site="b", record_id=record_id))
    with paths[2].open("w", newline="", encoding="utf-8") as handle:
        writer_truth = csv.writer(handle)
        writer_truth.writerow(("rec_id_a", "rec_id_b"))
        writer_truth.writerows(truth)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people-a", type=int, default=20_000)
    parser.add_argument("--people-b", type=int, default=10_000)
    parser.add_argument("--overlap", type=float, default=0.7, help="share of B's records that A also holds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="folder for a.csv, b.csv, truth.csv")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="medfed-linkage-cn-"))
    a_path, b_path, truth_path = write_sites(
        out, people_a=args.people_a, people_b=args.people_b, overlap=args.overlap, seed=args.seed
    )
    truth = load_truth(truth_path)
    print(f"files: {a_path}, {b_path}, {truth_path} ({len(truth):,} true pairs)")
    for label, without in (("all fields", ()), ("without resident id", ("national_id",))):
        mapping = parse_map(CHINESE_MAP, without=without)
        index_records, query_records = load_records(a_path, mapping), load_records(b_path, mapping)
        for weights, rule in (("recipe", DEFAULT_RULE), ("calibrated", calibrated_rule(index_records))):
            evaluation = evaluate(index_records, query_records, truth, rule=rule)
            print(f"{label:<20} {weights:<10} weights: {evaluation.score.line()}")
    print(f"same figures from the generic CLI: python benchmarks/linkage.py --index {a_path} --queries {b_path} ")
    print(f"    --truth {truth_path} --map {CHINESE_MAP} [--calibrate]")


if __name__ == "__main__":
    main()
