"""Regenerate the README's planning section ("Planning networks with cconv-plan"): every
``$ cconv-plan ...`` line of the template is followed by that command's real output.

    PYTHONPATH=. python analysis/examples/readme_section.py --measure > section.md

then replace the section in README.md with section.md.

``--measure`` (needs the built kernels) adds measured standard vs separable times and a
measured network table where the template says ``<!-- MEASURED -->``.
"""

import contextlib
import io
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TEMPLATE = os.path.join(HERE, "README-section.template.md")
sys.path.insert(0, ROOT)

MEASURED = [
    ("Measured on this machine (cconv kernels, best of 3):", "compare "
     "analysis/examples/small_resnet.toml --measure --format github"),
    ("and the network table with measured times beside the roofline estimate:", "network "
     "analysis/examples/small_resnet.toml --measure --format github"),
]
NOT_MEASURED = ("(Measured times appear here when this section is regenerated with "
                "`python analysis/examples/readme_section.py --measure` on a build.)")


def run(args: str) -> str:
    """Output (stdout then stderr) of ``cconv-plan args``, run in this process."""
    from analysis.cli import main
    args = args.split("#")[0].split()
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(args)
    finally:
        os.chdir(cwd)
    text = (out.getvalue() + err.getvalue()).rstrip("\n")
    if "--summary" in args:  # show only the per-type table
        text = text[text.index("| type"):]
    return text


def main(measure: bool) -> str:
    out = []
    for line in open(TEMPLATE, encoding="utf-8").read().split("\n"):
        if line.startswith("$ cconv-plan "):
            out += [line, run(line[len("$ cconv-plan "):])]
        elif line == "<!-- MEASURED -->":
            if not measure:
                out.append(NOT_MEASURED)
                continue
            for title, args in MEASURED:
                out += [title, "", "```", f"$ cconv-plan {args}", run(args), "```", ""]
        else:
            out.append(line)
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(main("--measure" in sys.argv[1:]))
