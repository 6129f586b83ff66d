"""Checks the bare install: built, installed into an empty environment, it runs the README's ranking example.

`pip install shuffle_learn` brings the ranking library and what it needs (JAX
and NumPy), nothing of the `train` extra. The steps, each timed:

1. build: ``python -m build`` writes an sdist, then a wheel built from that
   sdist (a file missing from the sdist is missing from the wheel too). Both
   must hold the ranking library, the experiments' configs and, once it is in
   the repository, the shipped model (``shuffle_learn/pretrained/audio_cfn/*``).
2. install: a virtual environment without system site packages, the wheel
   installed into it with no extras; every distribution pip adds is pinned to
   its version here (the tested versions, from pip's cache).
3. packages: ``pip list`` there holds no package of the `train` or `tfds`
   extras.
4. README: the ```python blocks of README.md's "## The library" that import
   only jax, jax.numpy and shuffle_learn.ranking run there, outside the
   repository; each line ending in a ``# [[...]]`` comment prints its value,
   which must match the comment to 2 decimals.

Command (``make light``; ``make test`` runs it after the tests), about 40 s
on a 2-core CPU:

  .venv/bin/python tools/check_light_install.py

It exits with a message naming the failed step.
"""

from __future__ import annotations

import ast
import configparser
import glob
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "shuffle_learn/pretrained/audio_cfn"
# What a README block may import to run on the bare install.
LIGHT_MODULES = frozenset({"jax", "jax.numpy", "shuffle_learn.ranking"})
# `# [[2., 1., 4., 3.]]` at the end of a line: the value the line prints.
_EXPECTED = re.compile(r"\s+#\s*(\[[-+0-9.eE,\s\[\]]*\])\s*$")


def run(args: list[str], step: str, **kwargs) -> str:
  """Runs ``args``; its stdout, or exit naming ``step`` with its output."""
  result = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
  if result.returncode:
    sys.exit(f"light install, {step}: {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
  return result.stdout


def normalize(name: str) -> str:
  """A distribution's name as PEP 503 compares it."""
  return re.sub(r"[-_.]+", "-", name).lower()


def extras_packages(*extras: str) -> set[str]:
  """The normalized names of the packages setup.cfg's ``extras`` require."""
  config = configparser.ConfigParser()
  config.read(os.path.join(REPO, "setup.cfg"))
  requirements = " ".join(config["options.extras_require"][extra] for extra in extras).split()
  return {normalize(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in requirements}


def imported_modules(source: str) -> set[str]:
  """The modules ``source`` imports (``from a import b``: ``a`` if it is light, else ``a.b``)."""
  modules = set()
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      modules.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      modules.update(node.module if node.module in LIGHT_MODULES else f"{node.module}.{alias.name}"
                     for alias in node.names)
  return modules


def library_examples(readme: str) -> list[tuple[int, list[str]]]:
  """(line number of its first line, lines) of each ```python block of README's "## The library"."""
  blocks, block, in_section = [], None, False
  for number, line in enumerate(readme.splitlines(), 1):
    if line.startswith("## "):
      in_section = line == "## The library"
    elif in_section and block is None and line == "```python":
      block = (number + 1, [])
    elif block is not None and line == "```":
      blocks.append(block)
      block = None
    elif block is not None:
      block[1].append(line)
  return [b for b in blocks if imported_modules("\n".join(b[1])) <= LIGHT_MODULES]


def instrument(first: int, lines: list[str]) -> tuple[str, dict[int, tuple[str, str]]]:
  """The block with each line ending in ``# [[...]]`` also printing its value.

  Returns:
    the program, and README line number -> (the line's code, the expected
    value's text) for each printing line.
  """
  program, expected = [], {}
  for number, line in enumerate(lines, first):
    match = _EXPECTED.search(line)
    if not match:
      program.append(line)
      continue
    code = line[:match.start()]
    statement = ast.parse(code.strip()).body[0]
    if isinstance(statement, ast.Expr):
      value = code.strip()
    elif isinstance(statement, ast.Assign) and len(statement.targets) == 1:
      program.append(code)
      value = ast.unparse(statement.targets[0])
    else:
      sys.exit(f"light install, README: README.md:{number} prints no value: {line.strip()}")
    indent = code[:len(code) - len(code.lstrip())]
    program.append(f"{indent}print('checked', {number}, _json.dumps(_np.asarray({value}).tolist()))")
    expected[number] = (code.strip(), match.group(1))
  return "\n".join(["import json as _json, numpy as _np", *program]), expected


def check_archives(dist: str) -> None:
  """The sdist and the wheel hold the ranking library, the configs and, when present, the shipped model."""
  wanted = ["shuffle_learn/ranking/__init__.py"]
  wanted += [os.path.relpath(p, REPO) for p in sorted(glob.glob(os.path.join(REPO, "experiments/configs/*.py")))]
  if os.path.exists(os.path.join(REPO, MODEL, "params.msgpack")):
    wanted += [f"{MODEL}/{name}" for name in sorted(os.listdir(os.path.join(REPO, MODEL)))]
    print(f"  the shipped model's files: {', '.join(sorted(os.listdir(os.path.join(REPO, MODEL))))}")
  else:
    print(f"  the shipped model: not checked, {MODEL} has no params.msgpack in the repository")
  [wheel], [sdist] = glob.glob(os.path.join(dist, "*.whl")), glob.glob(os.path.join(dist, "*.tar.gz"))
  with zipfile.ZipFile(wheel) as archive:
    wheel_files = set(archive.namelist())
  with tarfile.open(sdist) as archive:
    sdist_files = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
  for archive, files in ((wheel, wheel_files), (sdist, sdist_files)):
    missing = [name for name in wanted if name not in files]
    if missing:
      sys.exit(f"light install, build: {os.path.basename(archive)} lacks {', '.join(missing)}")
    print(f"  {os.path.basename(archive)}: {len(files)} files, {os.path.getsize(archive) / 1e6:.1f} MB, "
          f"the {len(wanted)} checked ones among them")


def check_values(output: str, expected: dict[int, tuple[str, str]]) -> None:
  """Each printed value matches its README comment to 2 decimals."""
  printed = {}
  for line in output.splitlines():
    if line.startswith("checked "):
      _, number, value = line.split(" ", 2)
      printed[int(number)] = np.array(json.loads(value), dtype=float)
  for number, (code, text) in sorted(expected.items()):
    value, want = printed[number], np.array(ast.literal_eval(text), dtype=float)
    ok = value.shape == want.shape and bool(np.all(np.abs(value - want) <= 0.005 + 1e-9))
    print(f"  README.md:{number} {code}\n    {np.round(value, 4).tolist()}, README {text}: {'ok' if ok else 'DIFFERENT'}")
    if not ok:
      sys.exit(f"light install, README: README.md:{number} gives {value.tolist()}, its comment says {text}")


def main() -> None:
  start = time.monotonic()
  blocks = library_examples(open(os.path.join(REPO, "README.md"), encoding="utf-8").read())
  if not blocks:
    sys.exit("light install, README: README.md's '## The library' has no block importing only "
             f"{', '.join(sorted(LIGHT_MODULES))}")
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
  with tempfile.TemporaryDirectory(prefix="light_install_") as tmp:
    step_start = time.monotonic()
    dist = os.path.join(tmp, "dist")
    run([sys.executable, "-m", "build", "--outdir", dist, REPO], "build", env=env)
    print(f"build: {time.monotonic() - step_start:.1f} s")
    check_archives(dist)

    step_start = time.monotonic()
    venv = os.path.join(tmp, "venv")
    python = os.path.join(venv, "bin", "python")
    run([sys.executable, "-m", "venv", venv], "install", env=env)
    constraints = os.path.join(tmp, "constraints.txt")
    pins = {normalize(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    pins.pop("shuffle-learn", None)
    with open(constraints, "w", encoding="utf-8") as f:
      f.writelines(f"{name}=={version}\n" for name, version in sorted(pins.items()))
    [wheel] = glob.glob(os.path.join(dist, "*.whl"))
    run([python, "-m", "pip", "install", "-q", "-c", constraints, wheel], "install", env=env, cwd=tmp)
    print(f"install: {time.monotonic() - step_start:.1f} s")

    step_start = time.monotonic()
    listed = json.loads(run([python, "-m", "pip", "list", "--format=json"], "packages", env=env, cwd=tmp))
    installed = {normalize(p["name"]): p["version"] for p in listed}
    heavy = sorted(set(installed) & (extras_packages("train", "tfds") | {"tensorflow"}))
    if heavy:
      sys.exit(f"light install, packages: the bare install brought {', '.join(heavy)}")
    print(f"packages: {time.monotonic() - step_start:.1f} s, "
          f"{', '.join(f'{name} {version}' for name, version in sorted(installed.items()))}")

    step_start = time.monotonic()
    for first, lines in blocks:
      program, expected = instrument(first, lines)
      program += "\nimport shuffle_learn.ranking as _ranking\nprint('module', _ranking.__file__)"
      output = run([python, "-I", "-c", program], f"README.md:{first}", env=env, cwd=tmp)
      module = output.splitlines()[-1].split(" ", 1)[1]
      if not os.path.realpath(module).startswith(os.path.realpath(venv) + os.sep):
        sys.exit(f"light install, README: shuffle_learn.ranking came from {module}, not the new environment")
      check_values(output, expected)
    print(f"README: {time.monotonic() - step_start:.1f} s, {len(blocks)} block(s) from {module}")
  print(f"light install: ok, {time.monotonic() - start:.1f} s")


if __name__ == "__main__":
  main()
