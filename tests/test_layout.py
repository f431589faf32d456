"""The house plan (docs/ARCHITECTURE.md) holds: import rules read from the source with `ast`, and the public surface."""

import ast
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "pix2pix_tf")
# The floors, lowest first: a package may import from its own floor's shared modules and from below, never above.
LAYERS = {
    "core": set(),  # the paper alone
    "data": {"errors", "config", "files"},
    "tasks": {"errors", "config", "files", "inference", "data"},
    "pretrained": {"errors", "config", "files", "precision", "run", "core", "data"},  # reads shipped models; apps/ship.py writes them
    "deploy": {"errors", "config", "files", "extras", "logs", "inference", "precision", "run", "core", "data", "tasks", "pretrained"},
    "evaluate": {"errors", "config", "files", "logs", "inference", "precision", "run", "core", "data", "tasks", "pretrained"},
}


def _module_name(path: str) -> str:
    parts = os.path.relpath(path, REPO)[: -len(".py")].split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the pix2pix_tf modules it imports anywhere in its file (late imports inside functions too)."""
    graph = {}
    for root, _, names in os.walk(PACKAGE):
        for name in names:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            module = _module_name(path)
            package = module if name == "__init__.py" else module.rpartition(".")[0]
            found = set()
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "pix2pix_tf"}
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = package.split(".")[: len(package.split(".")) - node.level + 1]
                        target = ".".join(base + ([node.module] if node.module else []))
                    else:
                        target = node.module or ""
                    if target.split(".")[0] != "pix2pix_tf":
                        continue
                    found.add(target)
                    # `from pkg import module` names a module too
                    found |= {f"{target}.{alias.name}" for alias in node.names}
            graph[module] = found
    return {module: {t for t in targets if t in graph} for module, targets in graph.items()}


GRAPH = _imports()


def _floor(module: str) -> str:
    """The subpackage (core, data, ...) or top-level module (config, run, ...) a module lives in."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_graph_is_read():
    assert len(GRAPH) > 40 and "pix2pix_tf.core.model" in GRAPH
    assert "pix2pix_tf.core.losses" in GRAPH["pix2pix_tf.core.model"]  # relative imports resolve
    assert "pix2pix_tf.pretrained" in GRAPH["pix2pix_tf.apps.predict"]  # and late ones, inside functions


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_from_below(layer):
    wrong = {
        (module, target)
        for module, targets in GRAPH.items()
        if _floor(module) == layer
        for target in targets
        if _floor(target) != layer and _floor(target) not in LAYERS[layer]
    }
    assert not wrong, f"{layer}/ imports above its floor: {sorted(wrong)}"


def test_core_imports_nothing_else_from_the_package():
    outside = {(m, t) for m, ts in GRAPH.items() if _floor(m) == "core" for t in ts if _floor(t) != "core"}
    assert not outside


def test_deploy_and_evaluate_never_import_train():
    assert not {(m, t) for m, ts in GRAPH.items() if _floor(m) in ("deploy", "evaluate") for t in ts if _floor(t) == "train"}


def test_no_import_cycles():
    done, on_path = set(), []

    def visit(module):
        if module in on_path:
            cycle = on_path[on_path.index(module) :] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        on_path.append(module)
        for target in sorted(GRAPH[module]):
            if target != module and not module.startswith(target + "."):  # a module's own parent package is no edge
                visit(target)
        on_path.pop()
        done.add(module)

    for module in sorted(GRAPH):
        visit(module)


def test_only_the_package_root_asks_for_apps():
    """predict, the demo, its static site and the ship command sit on top: only their `python -m pix2pix_tf.X`
    entry modules import them."""
    callers = {m for m, ts in GRAPH.items() if _floor(m) != "apps" for t in ts if _floor(t) == "apps"}
    assert callers <= {"pix2pix_tf.predict", "pix2pix_tf.demo", "pix2pix_tf.site", "pix2pix_tf.ship"}, callers


def test_public_surface():
    import pix2pix_tf
    from pix2pix_tf import REGISTRY, Pix2Pix, TrainConfig, build_discriminator, build_generator
    from pix2pix_tf.config import TrainConfig as config_cls
    from pix2pix_tf.core.model import Pix2Pix as model_cls
    from pix2pix_tf.core.networks import build_discriminator as disc
    from pix2pix_tf.core.networks import build_generator as gen
    from pix2pix_tf.data.sources import REGISTRY as registry

    assert (build_generator, build_discriminator, Pix2Pix, TrainConfig, REGISTRY) == (gen, disc, model_cls, config_cls, registry)
    assert "facades" in REGISTRY and {"build_generator", "Pix2Pix", "TrainConfig"} <= set(dir(pix2pix_tf))
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        pix2pix_tf.nonexistent  # noqa: B018
    generator = build_generator((32, 32), filters=4, depth=5)
    assert generator.output_shape == (None, 32, 32, 3)


def test_the_public_config_loads_without_tensorflow():
    """Every command parses its flags (config, registry) before TensorFlow loads, so --help and flag errors are quick."""
    code = "import sys; from pix2pix_tf import TrainConfig, REGISTRY; import pix2pix_tf.config; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
