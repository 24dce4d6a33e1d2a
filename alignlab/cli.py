"""`alignlab` on the command line.

    alignlab info                          # version, active profile, cache location
    alignlab zoo list [--profile P]        # what is cached, and whether it is intact
    alignlab zoo list --all [--profile P]  # every entry there is: its chapter, and whether `build` builds it
    alignlab zoo build [--profile P] [NAME ...]   # build entries (default: those the chapters use)
    alignlab zoo clean [--profile P] --yes # delete cached entries and runs
    alignlab quiz build [--check] [--source DIR]  # readable quiz sources → encoded banks
    alignlab quiz progress                 # your saved quiz scores, per chapter
    alignlab quiz clear-outputs NB ...     # strip executed quiz cells, progress bars and widget state
    alignlab lab check NOTEBOOK ...        # a lab notebook still has every graded cell
"""
from __future__ import annotations

import argparse
import sys


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


def _zoo(args) -> int:
    from . import zoo
    if args.action == "list" and args.all:
        _catalogue(args.profile)
    elif args.action == "list":
        rows = zoo.entries(args.profile)
        for r in rows:
            print(f"{r['profile']:4} {r['entry']:32} {r['mb']:8.2f} MB  {r['state']}")
        print(f"{len(rows)} entries in {zoo.home() / 'zoo'}")
    elif args.action == "build":
        for name in args.names or zoo.names(args.profile):
            print(f"{name}: {zoo.get(name, args.profile).path}")
    elif args.action == "clean":
        if not args.yes:
            print("This deletes cached checkpoints and runs; pass --yes to confirm.", file=sys.stderr)
            return 2
        print(f"removed {zoo.clean(args.profile)} cache folders")
    return 0


def _quiz(args) -> int:
    from pathlib import Path

    from . import quiz
    from .quiz import author
    if args.action == "progress":
        quiz.progress()
        return 0
    if args.action == "clear-outputs":
        for nb in args.notebooks:
            print(f"{nb}: {author.clear_quiz_outputs(Path(nb))} quiz cell(s) cleared")
        return 0
    stale = author.build_all(Path(args.source) if args.source else author.SOURCE_DIR, check=args.check)
    for s in stale:
        print(("out of step: " if args.check else "built: ") + s)
    if args.check and stale:
        print("Run `alignlab quiz build` and commit the banks.", file=sys.stderr)
        return 1
    print(f"{len(stale)} bank(s) {'out of step' if args.check else 'rebuilt'}")
    return 0


def _lab(args) -> int:
    from pathlib import Path

    from . import labs
    status = 0
    for path in map(Path, args.notebooks):
        lab = next((name for name in labs.LABS if path.name.startswith(name)), None)
        if lab is None:
            print(f"{path}: not one of the labs ({', '.join(labs.LABS)})", file=sys.stderr)
            status = 2
            continue
        problems = labs.structure_problems(path, lab) if path.exists() else [f"{path} does not exist"]
        print(f"{path}: " + ("ok" if not problems else "; ".join(problems)))
        status = status or (1 if problems else 0)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alignlab", description="AlignLab command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="version, profile and cache location")
    info.add_argument("--profile", choices=["ci", "cpu", "gpu"])
    info.set_defaults(func=_info)
    z = sub.add_parser("zoo", help="list, build or clean cached checkpoints")
    z.add_argument("action", choices=["list", "build", "clean"])
    z.add_argument("names", nargs="*", help="entries to build (default: all the profile's chapters use)")
    z.add_argument("--profile", choices=["ci", "cpu", "gpu"])
    z.add_argument("--all", action="store_true", help="`list`: every entry there is, cached or not, with its chapter")
    z.add_argument("--yes", action="store_true", help="confirm `clean`")
    z.set_defaults(func=_zoo)
    q = sub.add_parser("quiz", help="build quiz banks from their sources, or show your progress")
    q.add_argument("action", choices=["build", "progress", "clear-outputs"])
    q.add_argument("notebooks", nargs="*", help="notebooks for `clear-outputs`")
    q.add_argument("--check", action="store_true", help="write nothing; exit 1 if a bank is out of step")
    q.add_argument("--source", help="folder of NN_name.yaml sources (default: the repository's quizzes/)")
    q.set_defaults(func=_quiz)
    lab = sub.add_parser("lab", help="check lab notebooks before submitting or grading (nbgrader does the rest)")
    lab.add_argument("action", choices=["check"])
    lab.add_argument("notebooks", nargs="+", help="lab notebooks, e.g. submitted/*/lab1_sft/lab1_sft.ipynb")
    lab.set_defaults(func=_lab)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "zoo" and not any(x.startswith("-") for x in extra):
        args.names += extra  # argparse leaves names that come after an option unparsed
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except (KeyError, ValueError) as err:
        print(f"alignlab: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
