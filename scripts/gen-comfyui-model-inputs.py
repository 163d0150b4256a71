#!/usr/bin/env python3
"""Regenerates config/comfyui-model-inputs.json from a ComfyUI source tree.

Usage:
    scripts/gen-comfyui-model-inputs.py <comfyui-checkout> <owner/repo@commit> > config/comfyui-model-inputs.json

The checkout must be at the commit named in config/comfyui-core-nodes.json (the worker's
ComfyUI). The script only reads the source with Python's `ast` module: nothing of ComfyUI is
imported or run, so neither torch nor a GPU is needed.

What it extracts (see docs/vetting.md, "What is a model reference"):

* `folders`: every folder registered in folder_paths.py (`folder_names_and_paths[...] = ...`)
  with the file extensions ComfyUI accepts in it (a named extension set such as
  `supported_pt_extensions` is resolved). Folders that hold no weights (`configs`, the custom
  node folder) are marked `"model": false`.
* `nodes`: for every node class in nodes.py and comfy_extras/*.py, the inputs whose choices come
  from `folder_paths.get_filename_list(F)` or `folder_paths.get_folder_paths(F)`, directly, through
  a local variable or through a helper method of the class. For each: the folders, the literal
  options that ComfyUI adds beside the files (e.g. "[None]"), and the input's position among the
  node's widgets in the UI format (`widget`), or null when the position cannot be read statically
  (the vetter then treats every string widget of the node as a possible reference).
* `embeddingSuffixes`: the suffixes comfy/sd1_clip.py's `load_embed` tries after an
  `embedding:<name>` in prompt text.
"""

import ast
import json
import pathlib
import sys

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
V3_WIDGET_CLASSES = {"Int", "Float", "String", "Boolean", "Combo", "MultiCombo"}
SEED_NAMES = {"seed", "noise_seed"}
NON_MODEL_FOLDERS = {"configs", "custom_nodes"}
FOLDER_CALLS = {"get_filename_list", "get_folder_paths", "get_filename_list_"}


def folder_calls(node):
    """Folder names of every folder_paths.get_filename_list/get_folder_paths call under node."""
    found = []
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Call)
            and isinstance(sub.func, ast.Attribute)
            and sub.func.attr in FOLDER_CALLS
            and isinstance(sub.func.value, ast.Name)
            and sub.func.value.id == "folder_paths"
            and sub.args
            and isinstance(sub.args[0], ast.Constant)
            and isinstance(sub.args[0].value, str)
        ):
            found.append(sub.args[0].value)
    return found


def literal_strings(node):
    return sorted(
        {
            sub.value
            for sub in ast.walk(node)
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str)
        }
    )


class NodeClass:
    def __init__(self, cls):
        self.cls = cls
        self.methods = {
            item.name: item
            for item in cls.body
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
        }

    def folders_of(self, expr, function):
        """Folders an options expression draws from: direct calls, local variables assigned or
        filled in `function`, and helper methods of the class."""
        folders = folder_calls(expr)
        names = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
        attrs = {n.attr for n in ast.walk(expr) if isinstance(n, ast.Attribute)}
        for statement in ast.walk(function):
            if isinstance(statement, (ast.Assign, ast.AugAssign, ast.For, ast.Expr, ast.AnnAssign)):
                mentioned = {n.id for n in ast.walk(statement) if isinstance(n, ast.Name)}
                if names & mentioned and statement is not expr:
                    folders += folder_calls(statement)
        for attr in attrs:
            if attr in self.methods:
                folders += folder_calls(self.methods[attr])
        return sorted(set(folders))

    def inputs(self):
        """(name, options expression or None, is_widget, adds_control_widget, function) in
        widget order; None when the inputs cannot be read."""
        if "INPUT_TYPES" in self.methods:
            return self.v1_inputs(self.methods["INPUT_TYPES"])
        if "define_schema" in self.methods:
            return self.v3_inputs(self.methods["define_schema"])
        return None

    def v1_inputs(self, function):
        returns = [n for n in ast.walk(function) if isinstance(n, ast.Return)]
        if len(returns) != 1 or not isinstance(returns[0].value, ast.Dict):
            return None
        out = []
        top = returns[0].value
        for section in ("required", "optional"):
            for key, value in zip(top.keys, top.values):
                if not (isinstance(key, ast.Constant) and key.value == section):
                    continue
                if not isinstance(value, ast.Dict):
                    return None
                for name, spec in zip(value.keys, value.values):
                    if not isinstance(name, ast.Constant) or not isinstance(spec, ast.Tuple) or not spec.elts:
                        return None
                    kind = spec.elts[0]
                    options = spec.elts[1] if len(spec.elts) > 1 else None
                    if isinstance(kind, ast.Constant) and isinstance(kind.value, str):
                        widget = kind.value in WIDGET_TYPES
                    elif isinstance(kind, ast.Attribute):
                        widget = kind.attr in WIDGET_TYPES
                    else:
                        widget = True  # a list of choices: a combo
                    control = widget and (
                        name.value in SEED_NAMES
                        or (options is not None and "control_after_generate" in literal_strings(options))
                    )
                    out.append((name.value, kind, widget, control, function))
        return out

    def v3_inputs(self, function):
        out = []
        for call in ast.walk(function):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "Input"
                and isinstance(call.func.value, ast.Attribute)
                and call.args
                and isinstance(call.args[0], ast.Constant)
            ):
                continue
            kind = call.func.value.attr
            options = [kw.value for kw in call.keywords if kw.arg == "options"] + list(call.args[1:2])
            widget = kind in V3_WIDGET_CLASSES
            control = any(kw.arg == "control_after_generate" for kw in call.keywords) or (
                kind == "Int" and call.args[0].value in SEED_NAMES
            )
            expr = options[0] if options else call
            out.append((call.args[0].value, expr, widget, control, function))
        out.sort(key=lambda item: (item[1].lineno, item[1].col_offset))
        return out


def model_inputs(node_class):
    inputs = node_class.inputs()
    if inputs is None:
        # Cannot be read: report the folders anywhere in the class, without positions.
        folders = sorted(set(folder_calls(node_class.cls)) - {"custom_nodes"})
        return [{"input": None, "folders": folders, "literalOptions": [], "widget": None}] if folders else []
    out = []
    position = 0
    uncertain = False
    for name, expr, widget, control, function in inputs:
        folders = node_class.folders_of(expr, function) if widget else []
        if folders:
            options = [s for s in literal_strings(expr) if s not in folders]
            out.append(
                {
                    "input": name,
                    "folders": folders,
                    "literalOptions": options,
                    "widget": None if uncertain else position,
                }
            )
        if widget:
            position += 1
            if control:
                # The frontend adds a "control after generate" widget whose value is stored too;
                # past it positions are known, but keep it simple and exact: stop trusting them.
                uncertain = True
    return out


def read_folders(path):
    tree = ast.parse(path.read_text())
    sets = {}
    folders = {}
    for statement in tree.body:
        target = None
        if isinstance(statement, ast.AnnAssign):
            target, value = statement.target, statement.value
        elif isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
        if target is None or value is None:
            continue
        if isinstance(target, ast.Name) and isinstance(value, (ast.Set, ast.List)):
            sets[target.id] = literal_strings(value)
        if (
            isinstance(target, ast.Subscript)
            and isinstance(target.value, ast.Name)
            and target.value.id == "folder_names_and_paths"
            and isinstance(target.slice, ast.Constant)
            and isinstance(value, ast.Tuple)
            and len(value.elts) == 2
        ):
            extensions = value.elts[1]
            if isinstance(extensions, ast.Name):
                resolved = sets[extensions.id]
            else:
                resolved = literal_strings(extensions)
            name = target.slice.value
            folders[name] = {"extensions": resolved, "model": name not in NON_MODEL_FOLDERS}
    return folders


def embedding_suffixes(path):
    tree = ast.parse(path.read_text())
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef) and function.name == "load_embed":
            for statement in ast.walk(function):
                if (
                    isinstance(statement, ast.Assign)
                    and isinstance(statement.targets[0], ast.Name)
                    and statement.targets[0].id == "extensions"
                ):
                    return [e.value for e in statement.value.elts]
    raise SystemExit("load_embed's extensions not found in comfy/sd1_clip.py")


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    root = pathlib.Path(sys.argv[1])
    version = sys.argv[2]
    nodes = {}
    modules = [root / "nodes.py"] + sorted((root / "comfy_extras").glob("nodes_*.py"))
    for module in modules:
        tree = ast.parse(module.read_text())
        classes = {c.name: c for c in ast.walk(tree) if isinstance(c, ast.ClassDef)}
        mappings = {}
        for statement in ast.walk(tree):
            if isinstance(statement, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "NODE_CLASS_MAPPINGS" for t in statement.targets
            ) and isinstance(statement.value, ast.Dict):
                for key, value in zip(statement.value.keys, statement.value.values):
                    if isinstance(key, ast.Constant) and isinstance(value, ast.Name):
                        mappings[key.value] = value.id
        # Classes registered by a `NodeId = "..."` attribute (comfy_extras/nodes_hooks.py).
        for name, cls in classes.items():
            for item in cls.body:
                if (
                    isinstance(item, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "NodeId" for t in item.targets)
                    and isinstance(item.value, ast.Constant)
                ):
                    mappings.setdefault(item.value.value, name)
        if not mappings:
            # V3 extensions list their classes; the node id is the schema's node_id.
            for name, cls in classes.items():
                for call in ast.walk(cls):
                    if isinstance(call, ast.Call) and any(kw.arg == "node_id" for kw in call.keywords):
                        node_id = next(kw.value for kw in call.keywords if kw.arg == "node_id")
                        if isinstance(node_id, ast.Constant):
                            mappings[node_id.value] = name
                        break
        for node_type, class_name in mappings.items():
            if class_name not in classes:
                continue
            found = model_inputs(NodeClass(classes[class_name]))
            if found:
                nodes[node_type] = found
        mapped = set(mappings.values())
        for name, cls in classes.items():
            if name not in mapped and set(folder_calls(cls)) - {"custom_nodes", "embeddings"}:
                print(f"warning: {module.name}: class {name} reads a model folder but is not registered", file=sys.stderr)
    out = {
        "comfyuiVersion": version,
        "note": "Generated by scripts/gen-comfyui-model-inputs.py from ComfyUI's folder_paths.py, nodes.py, comfy_extras/nodes_*.py and comfy/sd1_clip.py at the commit above; do not edit by hand. `folders`: the folders ComfyUI resolves file names against, with the extensions it accepts there (`model: false` for folders that hold no weights). `nodes`: for each built-in node type, the inputs whose value names a file of such a folder, the literal options ComfyUI offers beside the files, and the input's position among the node's UI widgets (null: unknown). `embeddingSuffixes`: what ComfyUI appends to `embedding:<name>` when looking for the file.",
        "folders": dict(sorted(read_folders(root / "folder_paths.py").items())),
        "embeddingSuffixes": embedding_suffixes(root / "comfy" / "sd1_clip.py"),
        "nodes": dict(sorted(nodes.items())),
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
