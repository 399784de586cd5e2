"""The course's notebooks, made from its scripts (`make notebooks`).

Every `examples/course/lesson_*.py` is the source; `docs/course/lesson_*.ipynb` is made from it
with jupytext (the script's top-level blocks become cells; the `# + active="ipynb"` cell at its
end, a comment in the script, shows the lesson's figure in the notebook). Without `--execute`
only the cells' code is refreshed and the committed outputs are kept (jupytext's `--update`), so
on a clean tree `make notebooks` changes nothing. With `--execute` each notebook runs in
docs/course/ with the lesson's defaults (minutes each; its figure lands beside it) and is saved
with its outputs, for reading without running.

    python scripts/notebooks.py                      # refresh the code cells
    python scripts/notebooks.py --execute lesson_09  # run some (a name's prefix) and keep outputs
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "examples" / "course"
NOTEBOOKS = ROOT / "docs" / "course"


def notebook_of(script: Path, folder: Path = NOTEBOOKS) -> Path:
    return folder / f"{script.stem}.ipynb"


def refresh(script: Path, folder: Path = NOTEBOOKS) -> Path:
    """Write the notebook of `script` into `folder`: its cells' code from the script, the outputs
    of an existing notebook kept where a cell's code is unchanged."""
    import jupytext

    notebook = jupytext.read(script)
    path = notebook_of(script, folder)
    if path.is_file():
        from jupytext.combine import combine_inputs_with_outputs

        notebook = combine_inputs_with_outputs(notebook, jupytext.read(path))
    notebook.metadata.pop("kernelspec", None)  # run by whichever kernel opens it
    notebook.metadata.pop("language_info", None)
    folder.mkdir(parents=True, exist_ok=True)
    jupytext.write(notebook, path)
    return path


def execute(path: Path, timeout: int = 900) -> float:
    """Run the notebook at `path` in its folder and save it with its outputs; the seconds taken."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()  # fmt: skip
    seconds = time.perf_counter() - start
    notebook.metadata.pop("kernelspec", None)
    notebook.metadata.pop("language_info", None)
    nbformat.write(notebook, path)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="name prefixes (default: every lesson)")
    parser.add_argument("--execute", action="store_true", help="run them, keep the outputs")
    args = parser.parse_args()
    scripts = sorted(SCRIPTS.glob("lesson_*.py"))
    if args.lessons:
        scripts = [s for s in scripts if any(s.stem.startswith(p) for p in args.lessons)]
        if not scripts:
            sys.exit(f"No lesson in {SCRIPTS} starts with {args.lessons}")
    for script in scripts:
        path = refresh(script)
        if args.execute:
            print(f"{path.relative_to(ROOT)}: executed in {execute(path):.0f} s", flush=True)
        else:
            print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
