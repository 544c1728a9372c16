"""The pages state no fact about the demo that its configuration or its shipped runs deny.

Every prose page (``book/*.md``, ``notebooks/*.md``, ``README.md``) is read as text: front
matter, code cells and shell blocks are left out, the rest is split into paragraphs (a list
item or a table row is one), sentences and clauses. A number is checked when it states

- a latent size: "32-dimensional latent", "128-d", "N dimensions", "latent of N", "N-vector";
- a width: "N feature maps", "N down to M filters", "width N";
- an iteration count: "N iterations", "N–M steps", "N updates";
- a run time: "about 35 minutes", "over an hour", "in minutes", "hours";

and it is about the demo: its clause names the demo (``demo``, "shipped") or, naming no one,
follows a mention of the demo in the same paragraph. A clause that names the paper (or
Beers, NVIDIA, Karras, the authors), the smoke profile or the quality study (its "rows", a
configuration such as ``lr3_x2`` or ``_z32``) speaks for them and is not checked, so "the
paper's 128-d latent" and "4,000 iterations instead of the paper's 20,000" pass. An iteration
count is the encoder's, the vessel U-Net's, the augmentation segmenter's or the GAN's, by the
network its clause (else its sentence before it) names. The demo's true values are its
resolved configuration (``load_config("demo", dataset)``, the schedule's phases from
``build_phases``) and, for run times, ``data/pretrained/demo/manifest.json``.

A statement the checker misreads is listed in ``ALLOWED`` with its reason; an allowance no
page needs any more fails the test, so the list cannot rot.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from pggan_core.config import DATASETS, load_config
from pggan_core.training.schedule import build_phases

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([*ROOT.glob("book/*.md"), *ROOT.glob("notebooks/*.md"), ROOT / "README.md"])
MANIFEST = ROOT / "data" / "pretrained" / "demo" / "manifest.json"
STUDY = ROOT / "benchmarks" / "results" / "quality_study.json"

# (page relative to the repository root, a fragment of the sentence, why it is right)
ALLOWED: tuple[tuple[str, str, str], ...] = ()

NUM = r"\d{1,3}(?:,\d{3})+|\d+"
WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "half an": 0.5}

# who a clause speaks for: the last of these it names before the number (else after it,
# else whoever the paragraph last named)
DEMO = re.compile(r"\bdemo\b(?!_)|\bshipped\b", re.I)
PAPER = re.compile(r"\bpaper\b|\bbeers|\bP100\b|\bNVIDIA\b|\bkarras|\bauthors\b", re.I)


def _others() -> re.Pattern[str]:
    """The smoke profile and the quality study (its rows, its configurations but ``demo``)."""
    names = {r["candidate"] for r in json.loads(STUDY.read_text())["rows"]} - {"demo"} \
        if STUDY.is_file() else set()
    alternatives = [r"\bsmoke\b", r"\brows?\b", r"\bstudy\b", r"`_\w+`",
                    *(rf"`{re.escape(n)}`" for n in sorted(names))]
    return re.compile("|".join(alternatives), re.I)


OTHERS = _others()

LATENT = [re.compile(rf"(?<![\d.,])(?P<n>{NUM})(?:-d\b|-dimensional\b| dimensions\b|-vector\b)",
                     re.I),
          re.compile(rf"\blatent (?:of|size|dimension(?: of)?) (?P<n>{NUM})\b", re.I)]
WIDTH = [re.compile(rf"(?<![\d.,])(?P<n>{NUM})(?:\s*(?:down to|to|and|–|-)\s*(?P<m>{NUM}))?"
                    r" (?:feature maps|filters)\b", re.I),
         re.compile(rf"\b(?:width|wide)(?: of)? (?P<n>{NUM})\b|(?P<m>{NUM}) wide\b", re.I)]
ITERATIONS = re.compile(
    rf"(?<![\d.,])(?P<n>{NUM})(?:\s*(?:–|-|to|and)\s*(?P<m>{NUM}))?\s+"
    r"(?:(?:fade-in|fade|stable|training|GAN|encoder|more|further)\s+)?"
    r"(?:iterations|steps|updates)\b", re.I)
DURATION = re.compile(
    r"(?:(?P<q>over|more than|above|at least|under|less than|below|within|about|around|"
    r"roughly|nearly|almost)\s+)?"
    rf"(?P<n>half an|an?|one|two|three|a few|several|{NUM}(?:\.\d+)?)?"
    rf"(?:\s*(?:–|-|to)\s*(?P<m>{NUM}))?\s*(?P<unit>minutes|minute|min\b|hours|hour)", re.I)
RUN_CONTEXT = re.compile(r"\btrain|\brun\b|\bruns\b|\bGANs?\b|\btook\b|\btakes?\b|\bcost",
                         re.I)
NOT_A_RUN = re.compile(r"augment|segmenter|\bstudy\b|U-Net|\bbuild\b|\bbudget\b|check|"
                       r"download|\btests?\b", re.I)
TOTAL = re.compile(r"\bin all\b|\btogether\b|\ball four\b|\bthe four\b|\bfour runs\b|"
                   r"\bfor the \d+ runs\b|\bboth datasets\b|\btotal\b", re.I)


@dataclass(frozen=True)
class DemoFacts:
    """What the demo is: its resolved configuration and its shipped runs' times."""

    latent: frozenset[int]
    widths: frozenset[int]  # feature maps at the resolutions it trains
    unet_widths: frozenset[int]  # the vessel U-Net's and the augmentation segmenter's
    gan_iterations: frozenset[int]  # per phase, per resolution, per kind and in all
    encoder_iterations: frozenset[int]
    unet_iterations: frozenset[int]
    segmenter_iterations: frozenset[int]
    run_minutes: tuple[float, float]  # fewest training minutes, most minutes of a command
    all_runs_minutes: tuple[float, float]  # all runs on two lanes, all runs one after another


def demo_facts() -> DemoFacts:
    """The demo's facts from ``load_config("demo", ...)`` and the shipped runs' manifest."""
    latent, widths, unet, gan, encoder, vessels, segmenter = (set() for _ in range(7))
    for dataset in DATASETS:
        config = load_config("demo", dataset)
        latent.add(config.model.latent_dim)
        phases = build_phases(config)
        trained = {p.resolution for p in phases}
        widths |= {config.model.feature_maps[r] for r in trained}
        widths.add(max(config.model.feature_maps[min(trained)], config.model.latent_dim))
        unet |= {config.vessels.base_channels, config.augment.base_channels}
        gan |= {p.iterations for p in phases}
        for key in [*trained, "fade", "stable"]:
            gan.add(sum(p.iterations for p in phases if key in (p.resolution, p.kind)))
        gan.add(sum(p.iterations for p in phases))
        encoder |= {config.encoder.iterations, config.encoder.refine_steps}
        vessels.add(config.vessels.iterations)
        segmenter.add(config.augment.iterations)
    runs = json.loads(MANIFEST.read_text())["runs"].values()
    train = [r["train_seconds"] / 60 for r in runs]
    wall = [r["wall_seconds"] / 60 for r in runs]
    return DemoFacts(frozenset(latent), frozenset(widths), frozenset(unet), frozenset(gan),
                     frozenset(encoder), frozenset(vessels), frozenset(segmenter),
                     (min(train), max(wall)), (sum(train) / 2, sum(wall)))


# ---------------------------------------------------------------------------------------------
# pages as paragraphs, sentences and clauses


def paragraphs(text: str) -> list[str]:
    """The prose of a page: no front matter, fenced blocks, headings or HTML comments; a list
    item or a table row is a paragraph of its own; MyST roles reduced to their text."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":
        end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), 0)
        lines = lines[end + 1:]
    found: list[list[str]] = []
    fenced = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fenced = not fenced
            found.append([])
            continue
        if fenced or stripped.startswith((":::", "#")) or not stripped:
            found.append([])
            continue
        if re.match(r"([-*+]|\d+\.)\s", stripped) or stripped.startswith("|"):
            found.append([])  # a list item or a table row starts a paragraph
        if not found:
            found.append([])
        found[-1].append(stripped)
    texts = [" ".join(p) for p in found if p]
    # {doc}`words <target>` -> words; {cite:p}`key` -> key (a citation names its author)
    return [re.sub(r"\{[\w:-]+\}`([^`<]*?)\s*(?:<[^>]*>)?`", r"\1", t) for t in texts]


def sentences(paragraph: str) -> list[str]:
    """A paragraph cut after each full stop, question or exclamation mark before a capital."""
    return re.split(r"(?<=[.!?])\s+(?=[A-Z*`\"“(])", paragraph)


CLAUSE_BREAK = re.compile(r"[;:()\[\]|]|,\s|\s[—–]\s|\b(?:instead of|than|where|while|"
                          r"whereas|against|vs)\b", re.I)


def clauses(sentence: str) -> list[str]:
    """A sentence cut where a clause may change whose number it states."""
    return [c for c in CLAUSE_BREAK.split(sentence) if c.strip()]


def _last_subject(text: str) -> str | None:
    """Whom ``text`` names last: "demo", "paper", "other" or None."""
    hits = [(m.end(), name) for name, pattern in (("demo", DEMO), ("paper", PAPER),
                                                  ("other", OTHERS))
            for m in pattern.finditer(text)]
    return max(hits)[1] if hits else None


def _first_subject(text: str) -> str | None:
    hits = [(m.start(), name) for name, pattern in (("demo", DEMO), ("paper", PAPER),
                                                    ("other", OTHERS))
            for m in pattern.finditer(text)]
    return min(hits)[1] if hits else None


# ---------------------------------------------------------------------------------------------
# the checks


def _numbers(match: re.Match[str]) -> list[int]:
    return [int(v.replace(",", "")) for v in match.groupdict().values()
            if v and v.replace(",", "").isdigit()]


def _duration(match: re.Match[str]) -> tuple[str, float, float] | None:
    """(qualifier, low, high) minutes a duration states; None for a bare unit in a word
    ("a minute's thought")."""
    n, m, unit = match["n"], match["m"], match["unit"].lower()
    hours = unit.startswith("h")
    if n is None:  # "in minutes", "takes hours": plural alone
        if not unit.endswith("s"):
            return None
        return ("range", 120.0, float("inf")) if hours else ("range", 1.0, 20.0)
    word = n.lower()
    if word in ("a few", "several"):
        low, high = (2.0, 9.0) if word == "a few" else (3.0, 20.0)
    else:
        low = float(WORDS[word]) if word in WORDS else float(n.replace(",", ""))
        high = float(m.replace(",", "")) if m else low
    scale = 60.0 if hours else 1.0
    return ((match["q"] or "about").lower(), low * scale, high * scale)


def _contradicts_time(stated: tuple[str, float, float], actual: tuple[float, float]) -> bool:
    qualifier, low, high = stated
    least, most = actual
    if qualifier in ("over", "more than", "above", "at least"):
        return most < low
    if qualifier in ("under", "less than", "below", "within"):
        return least > high
    # about / a range / a plain number: must meet the actual span, give or take a fifth
    return high < least * 0.8 or low > most * 1.2


NETWORKS = {"encoder": r"encoder", "vessel U-Net": r"U-Net|vessel",
            "segmenter": r"segmenter|augment", "GAN": r"\bGAN\b|generator|critic|phase|fade"}


def _network(text: str, last: bool) -> str | None:
    """Which network ``text`` names last (or first): whose iterations a count is."""
    hits = [(m.start(), name) for name, pattern in NETWORKS.items()
            for m in re.finditer(pattern, text, re.I)]
    return (max(hits) if last else min(hits))[1] if hits else None


def check_clause(clause: str, sentence: str, facts: DemoFacts) -> list[str]:
    """What ``clause`` (about the demo) states that the demo's facts deny."""
    found = []
    latent_context = re.search(r"latent", sentence, re.I)
    for pattern in LATENT:
        for match in pattern.finditer(clause):
            n = _numbers(match)[0]
            if (latent_context or "latent" in pattern.pattern) and n > 3 \
                    and n not in facts.latent:
                found.append(f"latent of {n} (the demo's: {sorted(facts.latent)})")
    unet = re.search(r"U-Net|segmenter", clause, re.I) or re.search(r"U-Net|segmenter",
                                                                    sentence, re.I)
    for i, pattern in enumerate(WIDTH):
        allowed = facts.widths | (facts.unet_widths if i == 1 and unet else frozenset())
        for match in pattern.finditer(clause):
            bad = [n for n in _numbers(match) if n not in allowed]
            if bad:
                found.append(f"width {bad} (the demo's: {sorted(allowed)})")
    earlier = sentence[:max(sentence.find(clause), 0)]
    for match in ITERATIONS.finditer(clause):
        what = (_network(clause[:match.start()], last=True)
                or _network(clause[match.end():], last=False)
                or _network(earlier, last=True) or "GAN")
        allowed = {"GAN": facts.gan_iterations, "encoder": facts.encoder_iterations,
                   "vessel U-Net": facts.unet_iterations,
                   "segmenter": facts.segmenter_iterations}[what]
        bad = [n for n in _numbers(match) if n not in allowed]
        if bad:
            found.append(f"{bad} {what} iterations (the demo's: {sorted(allowed)})")
    if RUN_CONTEXT.search(sentence) and not NOT_A_RUN.search(clause):
        for match in DURATION.finditer(clause):
            stated = _duration(match)
            if stated is None:
                continue
            total = bool(TOTAL.search(earlier[-80:] + clause))  # "four runs in all: ..."
            actual = facts.all_runs_minutes if total else facts.run_minutes
            if _contradicts_time(stated, actual):
                found.append(f"run time {match.group(0).strip()!r} (the manifest: "
                             f"{actual[0]:.0f}–{actual[1]:.0f} min "
                             f"{'for all runs' if total else 'per run'})")
    return found


def check_text(text: str, facts: DemoFacts, default: str | None = None
               ) -> list[tuple[str, str]]:
    """(sentence, what is wrong) for every demo fact ``text`` states that ``facts`` deny;
    ``default`` is whom a paragraph speaks for until it names someone ("demo" for a
    notebook, whose prose describes the run it shows, the demo's in the default book)."""
    found = []
    for paragraph in paragraphs(text):
        subject = default  # carried from sentence to sentence within a paragraph
        for sentence in sentences(paragraph):
            parts = clauses(sentence)
            for i, clause in enumerate(parts):
                own = _last_subject(clause)
                for problem in check_clause(clause, sentence, facts):
                    # the clause's own mention before its first number wins, then after it,
                    # then a parenthesis right after it ("a 128-d latent was worse
                    # (`lr3_x2` ...)"), then whoever the paragraph named last
                    first_number = re.search(r"\d|\ban?\b hour|\bminutes\b|\bhours\b", clause)
                    before = clause[:first_number.start()] if first_number else clause
                    following = _parenthesis_after(sentence, clause, parts[i + 1:])
                    who = (_last_subject(before) or _first_subject(clause)
                           or _first_subject(following) or subject)
                    if who == "demo":
                        found.append((sentence, problem))
                subject = own or subject
    return found


def _parenthesis_after(sentence: str, clause: str, rest: list[str]) -> str:
    """The clause right after ``clause`` when it opens a parenthesis, else ""."""
    if not rest:
        return ""
    end = sentence.find(clause) + len(clause)
    start = sentence.find(rest[0], end)
    return rest[0] if start >= 0 and "(" in sentence[end:start] else ""


def check_page(path: Path, facts: DemoFacts) -> list[str]:
    """Every contradiction on the page at ``path`` not in ``ALLOWED``, as readable lines."""
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    default = "demo" if path.parent.name == "notebooks" else None
    return [f"{name}: {problem}: “{sentence}”"
            for sentence, problem in check_text(path.read_text(), facts, default)
            if not any(page == name and fragment in sentence for page, fragment, _ in ALLOWED)]


@pytest.fixture(scope="module")
def facts() -> DemoFacts:
    return demo_facts()


# ---------------------------------------------------------------------------------------------
# the tests


def test_no_page_states_a_demo_fact_its_config_or_manifest_denies(facts: DemoFacts):
    assert len(PAGES) > 10
    problems = [line for page in PAGES for line in check_page(page, facts)]
    assert problems == [], "\n".join(problems)


def test_a_planted_contradiction_is_flagged(tmp_path: Path, facts: DemoFacts):
    page = tmp_path / "planted.md"
    page.write_text("# A page\n\nWe trained the demo's 128-dimensional latent with care.\n")
    assert [p for p in check_page(page, facts) if "latent of 128" in p]
    planted = {
        "The demo fades each resolution in over 20 iterations.": "GAN iterations",
        "The `demo` profile has 64 feature maps at the top.": "width",
        "The demo runs take over 3 hours each on one core.": "run time",
        "The shipped runs were trained in minutes.": "run time",
        "The demo book shows four GANs. Trained on two cores they take 5 hours each.": "run time",
        "The demo's encoder trains for 20,000 iterations.": "encoder iterations",
        "The demo uses a latent of 128.": "latent of 128",
    }
    for text, expected in planted.items():
        flagged = check_text(text, facts)
        assert len(flagged) == 1 and expected in flagged[0][1], (text, flagged)
    # a notebook's prose describes the run it shows, the demo's, until it names someone else
    notebook = tmp_path / "notebooks" / "07_planted.md"
    notebook.parent.mkdir()
    notebook.write_text("t-SNE places latents that are close in 128 dimensions close together."
                        "\n\nThe authors projected the 128-dimensional latents with t-SNE.\n")
    assert [p for p in check_page(notebook, facts) if "latent of 128" in p] != []
    assert len(check_page(notebook, facts)) == 1


def test_the_papers_own_numbers_and_true_demo_facts_pass(facts: DemoFacts):
    fine = [
        "The paper's 128-d latent and its 20,000 iterations per phase.",
        "The demo's encoder trains for 4,000 iterations instead of the paper's 20,000.",
        "The demo keeps one latent vector (32 numbers in the `demo` profile, 128 in the paper).",
        "The demo configuration did better than `lr3_x4`, about as many images with a "
        "128-dimensional latent.",
        "Each demo run took about 35 minutes of training on one CPU core, over an hour for "
        "the four on two cores.",
        "The demo trains a 32-dimensional latent, 32 down to 8 feature maps, 800 to 4,000 "
        "iterations per phase; its vessel U-Net trains 400 iterations at width 16.",
        "The smoke profile's encoder trains for a handful of iterations; smoke runs in minutes.",
        "The paper spends 20,000 iterations on each fade. The demo trains far fewer.",
        "The `demo` runs cost about 35 minutes each, four runs in all: over an hour on two "
        "cores.",
        "The demo uses 32. A 128-dimensional latent was worse (`lr3_x2` against "
        "`lr3_z32_x2`), which is why the demo uses 32.",
    ]
    for text in fine:
        assert check_text(text, facts) == [], text


def test_code_cells_and_shell_blocks_are_not_prose(facts: DemoFacts):
    text = ("---\nkernelspec: {}\n---\n\n# The demo\n\n```{code-cell} ipython3\n"
            "print('the demo has a 128-d latent')\n```\n\n```bash\n"
            "pggan train --profile demo  # over an hour\n```\n")
    assert check_text(text, facts) == []


def test_every_allowance_is_still_needed(facts: DemoFacts):
    for page, fragment, reason in ALLOWED:
        assert reason, f"{page}: an allowance needs its reason"
        default = "demo" if page.startswith("notebooks/") else None
        raw = [s for s, _ in check_text((ROOT / page).read_text(), facts, default)]
        assert any(fragment in s for s in raw), f"{page}: {fragment!r} is no longer flagged"


# ---------------------------------------------------------------------------------------------
# the generated facts the pages print


def test_the_method_table_shows_the_iterations_each_phase_trains():
    from pggan_book.facts import config_value, method_table

    demo = load_config("demo", "rop")
    for kind in ("fade", "stable"):
        trained = {p.resolution: p.iterations for p in build_phases(demo) if p.kind == kind}
        text = config_value(demo, f"schedule.{kind}_iterations")
        assert text == ", ".join(f"{r} px: {n:,}" for r, n in sorted(trained.items()))
        assert f": {getattr(demo.schedule, f'{kind}_iterations')}," not in text + ","
    assert config_value(load_config("paper", "rop"), "schedule.fade_iterations") == \
        "8–512 px: 20,000"  # no fade at the first resolution
    row = method_table("rop").set_index("config key, code in pggan_core").filter(
        like="schedule.stable_iterations", axis=0)
    stable_64 = next(p.iterations for p in build_phases(demo)
                     if p.kind == "stable" and p.resolution == 64)
    assert stable_64 == 6_400  # the fundus pair's (demo.yaml, rop section)
    assert row["demo"].item().endswith(f"64 px: {stable_64:,}")


def test_the_deviation_table_lists_every_setting_the_demo_changes():
    from pggan_book.deviations import REPLACED_BY_PHASES, deviation_table

    table = deviation_table("paper", "demo")
    listed = set(zip(table["section"], table["setting"], strict=True))
    differs: dict[tuple[str, str], bool] = {}  # every plain setting: differs for a dataset?
    for dataset in DATASETS:
        paper, demo = load_config("paper", dataset).to_dict(), load_config("demo", dataset)
        for section, values in paper.items():
            if not isinstance(values, dict):
                continue
            for key, value in values.items():
                if f"{section}.{key}" in REPLACED_BY_PHASES or isinstance(value, dict):
                    continue
                differs[(section, key)] = differs.get((section, key), False) or \
                    value != demo.to_dict()[section][key]
    assert {k for k, d in differs.items() if d} == {k for k in listed if k in differs}
    for row in [("train", "ema_beta"), ("encoder", "betas"), ("vessels", "iterations"),
                ("vessels", "base_channels"), ("vessels", "train_resolution"),
                ("model", "feature_maps"), ("schedule", "fade iterations"),
                ("schedule", "stable iterations")]:
        assert row in listed, row
    assert ("vessels", "patch") not in listed and ("schedule", "batch_size") not in listed
    by_key = table.set_index(["section", "setting"])
    assert "0.999" in by_key.loc[("train", "ema_beta"), "source of the paper value (paper.yaml)"]
    assert "NVIDIA" in by_key.loc[("train", "ema_beta"), "source of the paper value (paper.yaml)"]
    assert "20,000" in by_key.loc[("encoder", "iterations"),
                                  "source of the paper value (paper.yaml)"]
    assert by_key.loc[("schedule", "stable iterations"), "demo"].endswith("64 px: 4,000")


def test_run_times_and_findings_are_read_not_typed(tmp_path: Path):
    from pggan_book.facts import findings_markdown, run_time_text, shipped_run_minutes

    runs = json.loads(MANIFEST.read_text())["runs"]
    minutes = shipped_run_minutes("demo")
    assert set(minutes) == set(runs)
    text = run_time_text("demo")
    low = min(r["train_seconds"] for r in runs.values()) / 60
    assert text.startswith(f"{low:.0f}") and "one CPU core" in text
    assert run_time_text("demo", root=tmp_path) is None  # no manifest there: nothing stated
    findings = findings_markdown("demo", ("rop", "brats"), root=tmp_path)
    assert findings.count("not computed in this build") == 3  # AUC, and each ablation
