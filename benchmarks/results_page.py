"""Write ``docs/results.md``: every file in ``benchmarks/results/``, each result with its title, the
commands that produced it, its date, the commit that last wrote it, its main table and the
paper's number where the protocol is the paper's.

    python benchmarks/results_page.py            # rewrite docs/results.md
    python benchmarks/results_page.py --check    # exit 1 if docs/results.md is out of date

Each benchmark script writes ``NAME.json`` (the numbers) and ``NAME.md`` (a table rendered from
that JSON, with ``Command:`` and ``Date:`` lines); the page takes the title, commands, date and
first table from the ``.md`` and lists every other file. Method pages embed one result with
``<!-- results: NAME -->`` (``docs/hooks.py`` calls ``section``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_SPEC = re.compile(r"\s*\((?:[a-z]+\.md)[^)]*\)")
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "results.md"

# The paper's own number, only where our protocol is the paper's (same data and metric).
PAPER = {
    "graph": "MVGRL paper: Cora 86.8 ± 0.5, CiteSeer 73.3 ± 0.5 (node accuracy); MUTAG 89.7 ± 1.1, "
    "PTC_MR 62.5 ± 1.7, IMDB-BINARY 74.2 ± 0.7 (graph accuracy). The official code gives below 84 on Cora.",
    "federated_cifar10": "MOON paper (10 parties, Dirichlet 0.5, 100 rounds, its CNN): MOON 69.1, FedProx 66.9, "
    "FedAvg 66.3 on CIFAR-10; ours runs fewer rounds on a smaller share (see the table's protocol).",
    "federated_50k_seeds": "MOON paper: MOON 69.1, FedProx 66.9, FedAvg 66.3 (100 rounds; ours: 20).",
}
# the sections of the page, by file-name prefix; the rest go under "Other"
GROUPS = (
    ("Images", ("image_", "demo", "views", "losses", "smoke_equivalence", "scaling")),
    ("Graphs", ("graph",)),
    ("Federated", ("federated", "moon_step")),
    ("Video", ("video_",)),
    ("Video-text and distillation", ("crossmodal", "captions", "ccl")),
    ("Restoration", ("dehaze",)),
    ("Protocols on pretrained experts", ("experts_",)),
    ("Speed, end to end", ("end_to_end", "step_profile")),
    ("GPU", ("gpu_",)),
)


def _commit(path: Path) -> str:
    out = subprocess.run(
        ["git", "log", "-1", "--format=%h %cs", "--", str(path.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return out or "not committed"


def _parts(md: str) -> tuple[str, list[str], str, list[str]]:
    """Title, command lines, date line and first table of a benchmark's Markdown."""
    lines = md.splitlines()
    title = next((line[2:].strip() for line in lines if line.startswith("# ")), "")
    title = _SPEC.sub("", title)  # older tables named a spec of ours that is not in the repository
    commands = [line.lstrip("- ").rstrip() for line in lines if line.lstrip("- ").startswith("Command")]
    date = next((line.strip() for line in lines if line.startswith("Date")), "")
    commands += [line.rstrip() for line in lines if line.startswith("Evaluated again")]
    table: list[str] = []
    for line in lines:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    return title, commands, date, table


def section(stem: str, level: int = 3) -> str:
    """One result: its title, provenance and main table (``stem``: a name in ``benchmarks/results``)."""
    md_file, json_file = RESULTS / f"{stem}.md", RESULTS / f"{stem}.json"
    out = []
    if md_file.is_file():
        title, commands, date, table = _parts(md_file.read_text())
        out.append(f"{'#' * level} {title or stem}")
        out.append("")
        files = [f"[`{stem}.md`](bench/{stem}.md)"] + ([f"`{stem}.json`"] if json_file.is_file() else [])
        written = _commit(json_file if json_file.is_file() else md_file)
        out.append(f"Files: {', '.join(files)}; last written at commit {written}.")
        out.append("")
        again = [c for c in commands if c.startswith("Evaluated again")]
        commands = [c for c in commands if c not in again]
        out += [c.replace("Command:", "- Command:") for c in commands[:3]]
        if len(commands) > 3:
            out.append(f"- … and {len(commands) - 3} more commands (parts merged later), in the full table")
        out += [f"- {c}" for c in again]
        if date:
            out.append(f"- {date}")
        out.append("")
        out += table
    else:
        out += [f"{'#' * level} {stem}", "", f"`{stem}.json` (no table); last written at commit {_commit(json_file)}."]
    if stem in PAPER:
        out += ["", f"Paper: {PAPER[stem]}"]
    return "\n".join(out) + "\n"


def _group(name: str) -> str:
    return next((title for title, prefixes in GROUPS if name.startswith(prefixes)), "Other")


def page() -> str:
    entries = sorted(RESULTS.iterdir())
    stems = sorted({p.stem for p in entries if p.suffix in (".md", ".json")})
    lines = [
        "# Results",
        "",
        "Every number we reproduced, generated from `benchmarks/results/` by "
        "`python benchmarks/results_page.py` (do not edit this page by hand). Each entry names the "
        "commands that produced it, its date and the commit that last wrote it; the linked page has "
        "the full table and its reading. Mean ± std are over the seeds the entry names. Unless an "
        "entry says otherwise the machine is a 2-core CPU.",
        "",
    ]
    for title in [g for g, _ in GROUPS] + ["Other"]:
        members = [s for s in stems if _group(s) == title]
        if not members:
            continue
        lines += [f"## {title}", ""]
        lines += [section(s) for s in members]
    lines += _zoo()
    others = [p for p in entries if p.suffix not in (".md", ".json")]
    if others:
        lines += ["## Other files", ""]
        for p in others:
            if p.is_dir():
                count = sum(1 for f in p.rglob("*") if f.is_file())
                lines.append(f"- `{p.name}/`: {count} files (parts of a result run apart, then merged)")
            else:
                lines.append(f"- `{p.name}`")
        lines.append("")
    return "\n".join(lines)


def _zoo() -> list[str]:
    """The zoo's entries with the band each must score (``contrastkit zoo verify`` checks it)."""
    from contrastkit.zoo.metafiles import entries

    lines = [
        "## Pretrained encoders (zoo)",
        "",
        "Each entry is trained by its recipe and seed on first use (`contrastkit zoo get NAME`) and must land in "
        "its band, taken from our multi-seed benchmark (mean ± 3 std). Verify them all from an empty cache: "
        "`CONTRASTKIT_HOME=$(mktemp -d) contrastkit zoo verify --all --data-root DATA`.",
        "",
        "| entry | recipe | seed | metric | band | from | command |",
        "|---|---|---:|---|---|---|---|",
    ]
    for e in entries().values():
        lines.append(
            f"| `{e.name}` | `{e.recipe}` | {e.seed} | {e.metric} | {e.band[0]:.2f} – {e.band[1]:.2f} | "
            f"{e.band_from} | `{e.command}` |"
        )
    return [*lines, ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/results.md is out of date")
    args = parser.parse_args()
    text = page()
    if args.check:
        if not PAGE.is_file() or PAGE.read_text() != text:
            print("docs/results.md is out of date: run python benchmarks/results_page.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
