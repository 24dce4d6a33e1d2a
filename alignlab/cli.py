"""`alignlab` on the command line; `alignlab COMMAND ACTION --help` explains each action.

    alignlab info [--profile P]            # version, active profile, cache location
    alignlab zoo list [--profile P]        # what is cached, whether it is intact, and what was set aside
    alignlab zoo list --all [--profile P]  # every entry there is: its chapter, and whether `build` builds it
    alignlab zoo build [--profile P] [NAME ...]   # build entries (default: those the chapters use)
    alignlab zoo clean [--profile P] --yes # delete cached entries and runs (every profile's by default)
    alignlab zoo clean --corrupt --yes     # delete only the copies set aside as corrupt
    alignlab quiz build [--check] [--source DIR]  # readable quiz sources → encoded banks
    alignlab quiz progress [--recover]     # your saved quiz scores, per chapter
    alignlab quiz clear-outputs NB ...     # strip executed quiz cells, progress bars and widget state
    alignlab lab check NB ...              # a lab notebook still has every graded cell
    alignlab report [--profile P] [--out REPORT.md] [--results DIR] [--compute]  # the report card

Each command's actions are sub-parsers, so each has its own help, example and argument checks; a
wrong argument exits 2 with argparse's message. Modules are imported inside the handlers, so
`--help` and `quiz` never import torch.
"""
from __future__ import annotations

import argparse
import sys

from .profiles import PROFILES

ACTIVE = "the active profile: $ALIGNLAB_PROFILE if set, else gpu when CUDA is available, else cpu"


def _info(args) -> int:
    from . import __version__, profiles, zoo
    prof = profiles.get_profile(args.profile)
    print(f"alignlab {__version__}\nprofile: {prof.name}\ncache: {zoo.home()}")
    return 0


def _catalogue(profile: str | None) -> None:
    """Every registrable entry: its chapter, whether `zoo build` builds it for the profile, why."""
    from . import profiles, zoo
    prof = profiles.get_profile(profile)
    built = set(zoo.names(prof))
    print(f"{'entry':22} {'chapter':18} {'zoo build (' + prof.name + ')':16} why")
    for name, recipe in zoo.registry().items():
        sized = name + ("@…" if recipe.sized else "")
        print(f"{sized:22} {recipe.chapter:18} {'yes' if name in built else 'no':16} {recipe.why}")
    print(f"{len(zoo.registry())} entries; `alignlab zoo build --profile {prof.name}` builds the {len(built)} "
          f"marked yes, `alignlab zoo build NAME` any of them")
    from .recipes import VOCAB_SIZE
    rungs = ", ".join(f"NAME@{r} ({size.n_params(VOCAB_SIZE):,} parameters)"
                      for r, size in prof.ladder.items() if r != "policy")
    print(f"NAME@… also trains at the {prof.name} ladder's other sizes: {rungs}; the plain NAME is the "
          f"policy ({prof.policy.n_params(VOCAB_SIZE):,})")


def _zoo_list(args) -> int:
    from . import zoo
    if args.all:
        _catalogue(args.profile)
        return 0
    rows = zoo.entries(args.profile)
    width = max((len(r["entry"]) for r in rows), default=0)  # names grow with `@rung`: no fixed column
    for r in rows:
        print(f"{r['profile']:4} {r['entry']:{width}} {r['mb']:8.2f} MB  {r['state']}")
    print(f"{len(rows)} entries in {zoo.home() / 'zoo'}")
    aside = zoo.set_aside_copies(args.profile)
    if aside:
        width = max(len(r["entry"]) for r in aside)
        print("\nset aside as corrupt (nothing reads them; `alignlab zoo clean --corrupt --yes` deletes them):")
        for r in aside:
            print(f"{r['profile']:4} {r['what']:5} {r['entry']:{width}} {r['mb']:8.2f} MB")
        print(f"{len(aside)} set aside, {sum(r['mb'] for r in aside):.2f} MB")
    return 0


def _zoo_build(args) -> int:
    from . import zoo
    for name in args.names or zoo.names(args.profile):
        print(f"{name}: {zoo.get(name, args.profile).path}")
    return 0


def _zoo_clean(args) -> int:
    from . import zoo
    what = "the copies set aside as corrupt" if args.corrupt else "cached checkpoints and runs"
    if not args.yes:
        print(f"This deletes {what}; pass --yes to confirm.", file=sys.stderr)
        return 2
    if args.corrupt:
        print(f"removed {zoo.clean_set_aside(args.profile)} copies set aside as corrupt")
    else:
        print(f"removed {zoo.clean(args.profile)} cache folders")
    return 0


def _quiz_build(args) -> int:
    from pathlib import Path

    from .quiz import author
    stale = author.build_all(Path(args.source) if args.source else author.SOURCE_DIR, check=args.check)
    for s in stale:
        print(("out of step: " if args.check else "built: ") + s)
    if args.check and stale:
        print("Run `alignlab quiz build` and commit the banks.", file=sys.stderr)
        return 1
    print(f"{len(stale)} bank(s) {'out of step' if args.check else 'rebuilt'}")
    return 0


def _quiz_progress(args) -> int:
    from . import quiz
    if args.recover:
        quiz.progress(recover=True)
    else:
        quiz.progress()
    return 0


def _quiz_clear_outputs(args) -> int:
    from pathlib import Path

    from .quiz import author
    for nb in args.notebooks:
        print(f"{nb}: {author.clear_quiz_outputs(Path(nb))} quiz cell(s) cleared")
    return 0


def _lab_check(args) -> int:
    from pathlib import Path

    from . import labs
    status = 0
    for path in map(Path, args.notebooks):
        lab = next((name for name in labs.LABS if path.name.startswith(name)), None)
        if lab is None:
            print(f"{path}: not one of the labs ({', '.join(labs.LABS)})", file=sys.stderr)
            status = 2
            continue
        if not path.exists():
            problems, edits = [f"{path} does not exist"], []
        else:
            problems, edits = labs.structure_problems(path, lab), labs.edited_locked_cells(path)
        print(f"{path}: " + ("ok" if not problems + edits else "; ".join(problems + edits)))
        status = status or (1 if problems + edits else 0)
    return status


def _report(args) -> int:
    from pathlib import Path

    from . import report
    chapters = report.chapter_ids()
    folder = Path(args.results) if args.results else report.default_folder(args.profile)
    if args.compute:
        report.compute_missing(chapters, args.profile, folder)
    collected = report.collect(args.profile, folder, chapters)
    print(f"{report.render(collected, args.profile, Path(args.out))}\n{report.summary(collected)}")
    return 0


def _add(sub, name: str, help: str, examples: list[str], func=None, **kw) -> argparse.ArgumentParser:
    """A sub-parser with a one-line `help` (listed under its parent's --help) and `examples`
    under its own --help; `func` handles it, `kw` go to `add_parser`."""
    epilog = "example" + "s" * (len(examples) > 1) + ":\n" + "\n".join(f"  {e}" for e in examples)
    parser = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", epilog=epilog,
                            formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
    if func:
        parser.set_defaults(func=func, parser=parser)
    return parser


def _profile(parser: argparse.ArgumentParser, help: str) -> None:
    # SUPPRESS: absent, it keeps the value given before the action (`zoo --profile ci build`)
    parser.add_argument("--profile", choices=sorted(PROFILES), default=argparse.SUPPRESS, help=help)


def _zoo_parser(sub) -> None:
    z = _add(sub, "zoo", "list, build or clean the cached checkpoints (the zoo)",
             ["alignlab zoo list", "alignlab zoo build --profile ci", "alignlab zoo clean --corrupt --yes"])
    z.add_argument("--profile", choices=sorted(PROFILES), help=argparse.SUPPRESS)  # `zoo --profile P ACTION` still works
    actions = z.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = _add(actions, "list", "list the cached entries, whether each is intact, and the copies set aside as corrupt",
              ["alignlab zoo list", "alignlab zoo list --all --profile cpu"], _zoo_list)
    _profile(ls, "only this profile's entries (default: every profile's; with --all, " + ACTIVE + ")")
    ls.add_argument("--all", action="store_true", help="every entry there is, cached or not, with its chapter")
    build = _add(actions, "build", "build the entries not cached yet (a cached one is checked, rebuilt if damaged)",
                 ["alignlab zoo build --profile ci", "alignlab zoo build sft rm@small"], _zoo_build)
    build.add_argument("names", nargs="*", metavar="NAME",
                       help="entries to build, NAME@rung at another size (default: all the profile's chapters use)")
    _profile(build, "build for this profile (default: " + ACTIVE + ")")
    clean = _add(actions, "clean", "delete cached entries, runs and unfinished builds, or only copies set aside",
                 ["alignlab zoo clean --yes", "alignlab zoo clean --profile ci --yes",
                  "alignlab zoo clean --corrupt --yes"], _zoo_clean)
    _profile(clean, "only this profile's entries and runs (default: every profile's); "
                    "quiz progress and results are never deleted")
    clean.add_argument("--corrupt", action="store_true",
                       help="delete only the copies set aside as corrupt; every entry and run stays")
    clean.add_argument("--yes", action="store_true", help="confirm (without it nothing is deleted)")


def _quiz_parser(sub) -> None:
    q = _add(sub, "quiz", "build quiz banks from their sources, show your progress, or clear quiz outputs",
             ["alignlab quiz progress", "alignlab quiz build --check"])
    actions = q.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = _add(actions, "build", "encode the readable quiz sources into the banks the notebooks read",
                 ["alignlab quiz build", "alignlab quiz build --check"], _quiz_build)
    build.add_argument("--check", action="store_true", help="write nothing; exit 1 if a bank is out of step")
    build.add_argument("--source", metavar="DIR",
                       help="folder of NN_name.yaml sources (default: the repository's quizzes/)")
    progress = _add(actions, "progress", "print your saved quiz score per chapter",
                    ["alignlab quiz progress", "alignlab quiz progress --recover"], _quiz_progress)
    progress.add_argument("--recover", action="store_true",
                          help="first merge back what can be read of the progress files set aside as damaged")
    clear = _add(actions, "clear-outputs", "strip executed quiz cells, progress bars and widget state from notebooks",
                 ["alignlab quiz clear-outputs chapters/02_bradley_terry.ipynb"], _quiz_clear_outputs)
    clear.add_argument("notebooks", nargs="+", metavar="NB", help="notebooks to clear, in place")


def _lab_parser(sub) -> None:
    lab = _add(sub, "lab", "check lab notebooks before submitting or grading (nbgrader does the rest)",
               ["alignlab lab check submitted/*/lab1_sft/lab1_sft.ipynb"])
    actions = lab.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = _add(actions, "check", "check that lab notebooks still have every graded cell and no edited locked cell",
                 ["alignlab lab check labs/source/lab1_sft/lab1_sft.ipynb",
                  "alignlab lab check submitted/*/lab1_sft/lab1_sft.ipynb"], _lab_check)
    check.add_argument("notebooks", nargs="+", metavar="NB",
                       help="lab notebooks, e.g. submitted/*/lab1_sft/lab1_sft.ipynb")


def _report_parser(sub) -> None:
    rep = _add(sub, "report", "write the report card: each chapter's headline numbers beside the papers', "
                              "with plots", ["alignlab report", "alignlab report --profile gpu --out gpu/REPORT.md",
                                             "alignlab report --profile ci --compute"], _report)
    rep.add_argument("--profile", choices=sorted(PROFILES), default="cpu",
                     help="whose numbers (default: cpu, the book's committed run)")
    rep.add_argument("--out", default="REPORT.md", metavar="FILE",
                     help="the Markdown file to write; its plots go beside it (default: REPORT.md)")
    rep.add_argument("--results", metavar="DIR",
                     help="the results folder, holding PROFILE/NN.json (default: the repository's results/ "
                          "for cpu, else $ALIGNLAB_RESULTS or the AlignLab home's results/)")
    rep.add_argument("--compute", action="store_true",
                     help="first run the notebook of each chapter with no results (slow: it trains)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (sub-parsers per command, and per action of each)."""
    top = argparse.ArgumentParser(prog="alignlab", description="AlignLab command line.",
                                  epilog=__doc__ and __doc__.split("\n\n")[1],  # the usage summary
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = _add(sub, "info", "print the version, the profile and the cache location",
                ["alignlab info", "alignlab info --profile cpu"], _info)
    info.add_argument("--profile", choices=sorted(PROFILES), help="describe this profile (default: " + ACTIVE + ")")
    _zoo_parser(sub)
    _quiz_parser(sub)
    _lab_parser(sub)
    _report_parser(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if extra and args.func is _zoo_build and not any(x.startswith("-") for x in extra):
        args.names += extra  # argparse leaves names after an option unparsed: `zoo build sft --profile ci rm`
    elif extra:
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except (KeyError, ValueError) as err:
        print(f"alignlab: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
