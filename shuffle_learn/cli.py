"""The one command-line convention of every entry point: a config file, ``--config.x=y`` overrides, ``--workdir``.

    python -m MODULE [--config path/to/config.py] [--config.a.b=value ...] --workdir DIR

A main is ``cli.run(fn, config=DEFAULT_CONFIG_FILE)`` under ``if __name__ ==
"__main__":``; ``fn(config, workdir)`` is an importable function that a
notebook calls the same way. Only `run` touches absl flags, so importing a
module never does. Before any work, a misspelt override (``--config.data.x``
where the field is ``config.pretrain.data.x``) and a bad config value each end
the program with a one-line error naming the field.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import sys
from typing import Any, Callable, Sequence


def load_config(path: str):
  """``get_config()`` of a config file, given by its path."""
  spec = importlib.util.spec_from_file_location("shuffle_learn_cli_config", path)
  if spec is None or spec.loader is None:
    raise FileNotFoundError(f"config file {path!r} is not a Python file.")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _paths(node, prefix: str = "") -> list[str]:
  """Every field path of a config, nodes and leaves: ``["eval", "eval.seeds", ...]``."""
  out = []
  for key, value in node.items():
    out.append(prefix + key)
    if hasattr(value, "items"):  # A ConfigDict or dict: a node.
      out += _paths(value, f"{prefix}{key}.")
  return out


def unknown_override(config, argv: Sequence[str]) -> str | None:
  """A one-line message for the first ``--config.FIELD`` of ``argv`` that is not a field of ``config``; else None."""
  paths = _paths(config)
  for arg in argv:
    if not arg.startswith("--config."):
      continue
    field = arg[len("--config."):].split("=", 1)[0]
    if field in paths:
      continue
    *parent, _ = field.split(".")
    parent = ".".join(parent)
    node = config
    for part in parent.split(".") if parent else []:
      node = node[part] if part in node else None
      if node is None:
        break
    guesses = [p for p in paths if p.endswith("." + field)] or difflib.get_close_matches(field, paths, n=1)
    hint = f"; did you mean {' or '.join('--config.' + g for g in guesses)}?" if guesses else ""
    if node is not None and hasattr(node, "keys"):
      fields = f"the fields of config{'.' + parent if parent else ''} are {', '.join(sorted(node.keys()))}"
    else:
      fields = f"the top-level fields are {', '.join(sorted(config.keys()))}"
    return f"--config.{field}: the config has no field {field!r}{hint} ({fields})."
  return None


def run(fn: Callable[[Any, str], Any], *, config: str, validate: Callable[[Any], Any] | None = None,
        print_result: bool = False, workdir_help: str = "Output directory.") -> None:
  """Parses ``--config``, its overrides and ``--workdir``, then calls ``fn(config, workdir)``.

  Args:
    fn: the importable function of the entry point.
    config: the default config file.
    validate: checks the whole config before ``fn`` runs (raises ValueError
      naming the field, or ImportError naming a missing package). Either,
      or an ImportError from ``fn``, ends the program with one line.
    print_result: print what ``fn`` returns, as JSON.
    workdir_help: the ``--workdir`` flag's help.
  """
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)

  # The overrides are checked against the config file before ml_collections
  # reads them (it would end with a traceback).
  argv = sys.argv[1:]
  path = config
  for i, arg in enumerate(argv):
    if arg == "--config" and i + 1 < len(argv):
      path = argv[i + 1]
    elif arg.startswith("--config="):
      path = arg.split("=", 1)[1]
  try:
    message = unknown_override(load_config(path), argv)
  except (OSError, AttributeError, SyntaxError) as e:
    message = f"--config {path}: cannot load the config file ({e})."
  if message:
    fail(message)
  # ml_collections reads the overrides from sys.argv as soon as the flag is defined.
  config_flag = config_flags.DEFINE_config_file("config", config, "Config file (get_config()).", lock_config=True)
  workdir_flag = flags.DEFINE_string("workdir", None, workdir_help, required=True)

  def main(argv):
    del argv
    if not flags.FLAGS["verbosity"].present:
      logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
    value = config_flag.value
    from shuffle_learn import parallel  # pylint: disable=g-import-not-at-top
    parallel.maybe_initialize_distributed()  # Before `validate` counts the devices of all processes.
    if validate is not None:
      try:
        validate(value)
      except (ValueError, ImportError) as e:
        fail(str(e))
    try:
      result = fn(value, workdir_flag.value)
    except ImportError as e:  # A missing optional package: its message says what to install.
      fail(str(e))
    if print_result:
      print(json.dumps(result, indent=2, default=str))

  app.run(main)
