r"""The configuration reference, generated from the code.

    python -m trainer.config_reference --write   # docs/config-reference.md
    python -m trainer.config_reference           # the page, on stdout

The page lists every field of the resolved config (`trainer.config.resolve`)
of each file in configs/: the default config (configs/dcgan_mnist.py) in
full, the others where they differ from it, and each variant as its changes.
A field's help is the comment where it is set: in the config file, else in
the base config every file builds on (trainer/defaults.py), each a comment
block above `config.a.b = ...`, which also covers the assignments of the
same section directly below it, up to a blank line or the next comment, or
a comment at the end of the assignment's own line; an architecture's own
fields have the comment above or beside their entry in the architecture's
`fields` (one entry a line). The page then gives each architecture's own
fields and every registry's names, described by the entry's docstring, a
string right after its registration, the comment above it, or the docstring
of a module that registers only it.

tests/test_config_reference.py fails when docs/config-reference.md differs
from what this prints.
"""

import ast
import functools
import glob
import importlib
import inspect
import io
import json
import os
import re
import tokenize

from absl import app
from absl import flags
import ml_collections

from trainer import config as config_lib
from trainer.models import ARCHITECTURES
from trainer.registry import Registry

_WRITE = flags.DEFINE_bool(
    "write", False, "Write the page to docs/config-reference.md instead of "
    "printing it.")

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PACKAGE = os.path.join(_REPO, "trainer")
_CONFIGS = os.path.join(_REPO, "configs")
# The base config, where the fields that config files share are set.
_BASE = os.path.join(_PACKAGE, "defaults.py")
PAGE = os.path.join(_REPO, "docs", "config-reference.md")
# The default of --config (trainer/cli.py).
_DEFAULT_CONFIG = "dcgan_mnist.py"
COMMAND = "python -m trainer.config_reference --write"


# ------------------------------------------------------------------ sources


@functools.cache
def _parsed(path: str) -> tuple[ast.Module, dict[int, tuple[str, bool]]]:
  """A file's syntax tree and its comments: line -> (text, whole line)."""
  with open(path, encoding="utf-8") as f:
    source = f.read()
  comments = {}
  for token in tokenize.generate_tokens(io.StringIO(source).readline):
    if token.type == tokenize.COMMENT:
      whole_line = not token.line[:token.start[1]].strip()
      comments[token.start[0]] = (token.string.lstrip("#").strip(), whole_line)
  return ast.parse(source), comments


def _comment_above(comments, line: int) -> str:
  """The block of whole-line comments that ends right above `line`."""
  lines = []
  while comments.get(line - 1, ("", False))[1]:
    line -= 1
    lines.insert(0, comments[line][0])
  return " ".join(lines)


def _config_path(target: ast.expr) -> str | None:
  """"a.b" for the target config.a.b, or config.a["b"] (a field named by a
  Python keyword); None for anything else."""
  parts = []
  while isinstance(target, (ast.Attribute, ast.Subscript)):
    if isinstance(target, ast.Attribute):
      parts.insert(0, target.attr)
    elif (isinstance(target.slice, ast.Constant)
          and isinstance(target.slice.value, str)):
      parts.insert(0, target.slice.value)
    else:
      return None
    target = target.value
  if isinstance(target, ast.Name) and target.id == "config" and parts:
    return ".".join(parts)
  return None


def _targets(statement: ast.stmt) -> list[ast.expr]:
  if isinstance(statement, ast.Assign):
    targets = statement.targets
  elif isinstance(statement, ast.AnnAssign):
    targets = [statement.target]
  else:
    return []
  return [e for t in targets
          for e in (t.elts if isinstance(t, ast.Tuple) else [t])]


def _help_of(spans, comments) -> list[str]:
  """The help of each of a run of statements or dict entries.

  `spans`: (first line, last line, section) of each. A comment block above
  one is its help, and that of the ones directly below it of the same
  section, up to a blank line or another comment; a comment at the end of
  one's own lines is its own help.
  """
  helps, group, section, previous_end = [], "", None, None
  for first, last, part in spans:
    above = _comment_above(comments, first)
    if above:
      group, section = above, part
    elif previous_end != first - 1 or part != section:
      group = ""
    own = " ".join(comments[line][0] for line in range(first, last + 1)
                   if line in comments and not comments[line][1])
    helps.append(own or group)
    if own:
      group = ""
    previous_end = last
  return helps


def field_help(path: str) -> dict[str, str]:
  """Help of each config field that the file's functions assign, by path.

  A comment block above an assignment is its help, and that of the
  assignments directly below it that set fields of the same section, up to
  a blank line or another comment; a comment at the end of an assignment's
  line is its own help.
  """
  tree, comments = _parsed(path)
  found = {}
  for function in ast.walk(tree):
    if not isinstance(function, ast.FunctionDef):
      continue
    assigned = [[f for f in map(_config_path, _targets(s)) if f]
                for s in function.body]
    spans = [(s.lineno, s.end_lineno,
              fields[0].rpartition(".")[0] if fields else None)
             for s, fields in zip(function.body, assigned)]
    for fields, text in zip(assigned, _help_of(spans, comments)):
      for field in fields:
        found.setdefault(field, text)
  return found


def _trainer_files() -> list[str]:
  return sorted(glob.glob(os.path.join(_PACKAGE, "**", "*.py"), recursive=True))


def _module_name(path: str) -> str:
  name = os.path.splitext(os.path.relpath(path, _REPO))[0].replace(os.sep, ".")
  return name.removesuffix(".__init__")


def _registries() -> list[tuple[str, Registry]]:
  """(variable name, registry) of every module-level Registry in trainer/.

  Those named by a config field first, then those named by a flag.
  """
  found = []
  for path in _trainer_files():
    tree, _ = _parsed(path)
    for statement in tree.body:
      value = getattr(statement, "value", None)
      if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
          and value.func.id == "Registry"):
        name = _targets(statement)[0].id
        module = importlib.import_module(_module_name(path))
        found.append((name, getattr(module, name)))
  return sorted(found, key=lambda item: not _is_config_field(item[1].setting))


def _is_config_field(setting: str) -> bool:
  return not setting.startswith("-") and " " not in setting


def _registered_name(statement: ast.stmt, registry: str) -> str | None:
  """`name` for a statement `<registry>.register("name")(...)`."""
  call = getattr(statement, "value", None)
  if not (isinstance(statement, ast.Expr) and isinstance(call, ast.Call)
          and isinstance(call.func, ast.Call)):
    return None
  register = call.func
  holder = getattr(register.func, "value", None)
  holder = getattr(holder, "attr", getattr(holder, "id", None))
  if (getattr(register.func, "attr", None) == "register" and holder == registry
      and register.args and isinstance(register.args[0], ast.Constant)):
    return register.args[0].value
  return None


def _registration_notes(registry: str) -> dict[str, str]:
  """Text the source gives each entry registered by a plain statement.

  A string right after the statement, else the comment block above it, else
  the docstring of a module that registers only this entry.
  """
  notes = {}
  for path in _trainer_files():
    tree, comments = _parsed(path)
    found = {}
    for i, statement in enumerate(tree.body):
      name = _registered_name(statement, registry)
      if name is None:
        continue
      after = tree.body[i + 1] if i + 1 < len(tree.body) else None
      if (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
          and isinstance(after.value.value, str)):
        found[name] = inspect.cleandoc(after.value.value)
      else:
        found[name] = _comment_above(comments, statement.lineno)
    if len(found) == 1 and not any(found.values()):
      found = dict.fromkeys(found, ast.get_docstring(tree) or "")
    notes.update(found)
  return notes


def fields_help(path: str, registry: str) -> dict[str, dict[str, str]]:
  """Help of the `fields` entries of each registration in a file.

  For every `<registry>.register("name")(Entry(..., fields={...}))`: name
  -> field -> its help, found as in a config file (field_help): a comment
  block above an entry, which also covers the entries directly below it up
  to a blank line or another comment, or a comment at the end of the
  entry's own line.
  """
  tree, comments = _parsed(path)
  found = {}
  for statement in tree.body:
    name = _registered_name(statement, registry)
    entry = statement.value.args[0] if name and statement.value.args else None
    fields = next((k.value for k in getattr(entry, "keywords", ())
                   if k.arg == "fields"), None)
    if not isinstance(fields, ast.Dict):
      continue
    spans = [(k.lineno, v.end_lineno, None)
             for k, v in zip(fields.keys, fields.values)]
    found[name] = {k.value: text for k, text in
                   zip(fields.keys, _help_of(spans, comments))}
  return found


@functools.cache
def _registered_field_help(registry: str) -> dict[str, dict[str, str]]:
  """Help of the fields each entry of a registry declares: name -> field ->
  text (architectures' model fields, penalties' sections)."""
  found = {}
  for path in _trainer_files():
    found.update(fields_help(path, registry))
  return found


def _description(entry, note: str) -> str:
  """The first line of an entry's own docstring, else of its note."""
  own = (inspect.isfunction(entry) or inspect.isclass(entry)
         or inspect.ismodule(entry))
  text = inspect.getdoc(entry) if own and entry.__doc__ else note
  return (text or "").strip().split("\n")[0]


# ------------------------------------------------------------------ configs


def _load(file: str, variant: str | None) -> ml_collections.ConfigDict:
  """The resolved config of configs/<file>, for a variant."""
  return config_lib.resolve(
      config_lib.from_file(os.path.join(_CONFIGS, file), variant))


def _variants(file: str) -> list[str]:
  """The variants a config file names in its unknown-variant error."""
  try:
    _load(file, "?")
  except ValueError as e:
    match = re.search(r"valid: (.*)$", str(e))
    if match:
      return [v.strip() for v in match.group(1).split(",")]
  raise ValueError(f"configs/{file} does not list its variants in the error "
                   "for an unknown variant (\"...; valid: a, b\")")


def _flat(config: dict, prefix: str = "") -> dict[str, object]:
  """{"a.b": value} for every leaf of a nested dict."""
  leaves = {}
  for key, value in config.items():
    if isinstance(value, dict):
      leaves.update(_flat(value, f"{prefix}{key}."))
    else:
      leaves[f"{prefix}{key}"] = value
  return leaves


def _fields(file: str, variant: str | None = None) -> dict[str, object]:
  return _flat(_load(file, variant).to_dict())


def _changes(base: dict, config: dict) -> dict[str, object]:
  return {k: v for k, v in config.items() if base.get(k, object()) != v}


@functools.cache
def _help(file: str) -> dict[str, str]:
  """Field help from a config file, else from the base config, else from
  the registrations of its architecture's fields and of the penalties."""
  found = {}
  for source in (os.path.join(_CONFIGS, file), _BASE):
    for field, text in field_help(source).items():
      if text:
        found.setdefault(field, text)
  architecture = _fields(file)["model.architecture"]
  own = {f"model.{field}": text for field, text in
         _registered_field_help("ARCHITECTURES").get(architecture, {}).items()}
  own.update({f"penalties.{name}.{field}": text
              for name, fields in _registered_field_help("PENALTIES").items()
              for field, text in fields.items()})
  for field, text in own.items():
    if text:
      found.setdefault(field, text)
  return found


def _config_files() -> list[str]:
  files = sorted(os.path.basename(p)
                 for p in glob.glob(os.path.join(_CONFIGS, "*.py")))
  return sorted(files, key=lambda f: f != _DEFAULT_CONFIG)


def _field_text(file: str, field: str) -> str:
  """The field's help, or its sub-section's (penalties.pl for .decay)."""
  parts = field.split(".")
  for depth in range(len(parts), 1, -1):
    text = _help(file).get(".".join(parts[:depth]))
    if text:
      return text
  return ""


# ------------------------------------------------------------------ page


def _cell(text: str) -> str:
  return text.replace("|", "\\|").replace("<", "&lt;")


def _value(value) -> str:
  """A value as it is written in Python, as code."""
  return f"`{json.dumps(value) if isinstance(value, str) else repr(value)}`"


def _table(header: tuple[str, ...], rows) -> list[str]:
  return ([f"| {' | '.join(header)} |", "|" + " --- |" * len(header)]
          + [f"| {' | '.join(_cell(c) for c in row)} |" for row in rows] + [""])


def _field_rows(file: str, fields: dict[str, object],
                names: dict[str, list[str]]):
  for field, value in fields.items():
    text = _field_text(file, field)
    if field in names:
      text = f"{text} Names: {', '.join(names[field])}.".strip()
    yield f"`{field}`", _value(value), text


def _summary(file: str) -> str:
  tree, _ = _parsed(os.path.join(_CONFIGS, file))
  return (ast.get_docstring(tree) or "").split("\n")[0]


def _variant_rows(file: str, fields: dict[str, object]):
  for variant in _variants(file):
    changes = _changes(fields, _fields(file, variant))
    yield (f"`{variant}`",
           ", ".join(f"`{k}={_value(v)[1:-1]}`" for k, v in changes.items())
           or "the default")


def _default_section(fields, names) -> list[str]:
  lines = [f"## configs/{_DEFAULT_CONFIG} (the default)", "",
           _summary(_DEFAULT_CONFIG), ""]
  sections = {"": {}}
  for field, value in fields.items():
    section = field.split(".")[0] if "." in field else ""
    sections.setdefault(section, {})[field] = value
  for section, members in sections.items():
    lines += [f"### `{section}`" if section else "### Top level", ""]
    intro = _help(_DEFAULT_CONFIG).get(section)
    if intro:
      lines += [_cell(intro), ""]
    lines += _table(("field", "default", "help"),
                    _field_rows(_DEFAULT_CONFIG, members, names))
  lines += ["### Variants", ""]
  lines += _table(("variant", "changes from the default"),
                  _variant_rows(_DEFAULT_CONFIG, fields))
  return lines


def _family_section(file: str, default: dict, names) -> list[str]:
  fields = _fields(file)
  return ([f"## configs/{file}", "", _summary(file), "",
           f"Where its default differs from configs/{_DEFAULT_CONFIG}'s:", ""]
          + _table(("field", "value", "help"),
                   _field_rows(file, _changes(default, fields), names))
          + [f"Variants (`--config=configs/{file}:<variant>`):", ""]
          + _table(("variant", "changes from its default"),
                   _variant_rows(file, fields)))


def _range(architecture, field: str) -> str:
  if field in architecture.positive:
    return ">= 1"
  return "[0, 1)" if field in architecture.unit_interval else ""


def _architectures_section() -> list[str]:
  notes = _registration_notes("ARCHITECTURES")
  own_help = _registered_field_help("ARCHITECTURES")
  lines = ["## Architectures (`model.architecture`)", "",
           "Each architecture's own `model.*` fields, filled in with these "
           "defaults when a config does not set them. A field that fixes the "
           "saved state's shapes cannot change in a workdir that holds a run.",
           ""]
  for name in ARCHITECTURES:
    architecture = ARCHITECTURES.get(name)
    lines += [f"### `{name}`", ""]
    if notes.get(name):
      lines += [" ".join(notes[name].split()), ""]
    lines += _table(
        ("field", "default", "range", "fixes the state", "help"),
        ((f"`model.{f}`", _value(v), _range(architecture, f),
          "yes" if f in architecture.state_fields else "",
          own_help.get(name, {}).get(f, ""))
         for f, v in architecture.fields.items()))
  return lines


def _registries_section(registries) -> list[str]:
  lines = ["## Registries", "",
           "Choices made by name; an unknown name stops with an `error:` "
           "line that lists these.", ""]
  for variable, registry in registries:
    notes = _registration_notes(variable)
    lines += [f"### {registry.kind}: {registry.setting}", ""]
    lines += _table(("name", "what"), (
        (f"`{n}`", _description(registry.get(n), notes.get(n, "")))
        for n in registry))
  return lines


def generate() -> str:
  """The page, as Markdown."""
  registries = _registries()
  names = {r.setting: r.names() for _, r in registries}
  default = _fields(_DEFAULT_CONFIG)
  lines = [
      "# Configuration reference", "",
      f"Generated from the code by `{COMMAND}` (trainer/config_reference.py);"
      " do not edit it by hand. tests/test_config_reference.py fails when "
      "this page and the code disagree. How configs, variants and overrides "
      "work: [configuration.md](configuration.md).", "",
      "Every value is the resolved one (`trainer.config.resolve`), as a run "
      "writes it to `<workdir>/config.json`; the help is the comment beside "
      "the field where it is set: the config file, the base config every "
      "file builds on (trainer/defaults.py) or the architecture's fields "
      "(trainer/models).", ""]
  lines += _default_section(default, names)
  for file in _config_files()[1:]:
    lines += _family_section(file, default, names)
  lines += _architectures_section()
  lines += _registries_section(registries)
  return "\n".join(lines).rstrip("\n") + "\n"


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  page = generate()
  if _WRITE.value:
    os.makedirs(os.path.dirname(PAGE), exist_ok=True)
    with open(PAGE, "w", encoding="utf-8") as f:
      f.write(page)
  else:
    print(page, end="")


if __name__ == "__main__":
  app.run(main)
