"""The README's Python examples run, in order, as one script."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_examples_run_and_shapes_match_their_comments():
    code = "\n".join(python_blocks())
    assert "cconv.conv2d" in code
    namespace = {}
    # Every "y = ...  # (shape)" comment is checked against the shape actually returned.
    script = []
    for line in code.splitlines():
        script.append(line)
        m = re.match(r"^(y = .*?)\s+#\s*\(([\d, ]+)\)", line)
        if m:
            shape = tuple(int(v) for v in m.group(2).split(","))
            script.append(f"assert y.shape == {shape!r}, (y.shape, {line!r})")
    exec(compile("\n".join(script), str(README), "exec"), namespace)
    assert isinstance(namespace["y"], np.ndarray)
