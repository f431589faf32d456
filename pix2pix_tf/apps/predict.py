"""Translate images with a trained or exported pix2pix generator, locally or through TF Serving.

    python -m pix2pix_tf.predict --pretrained cityscapes --output-dir outputs/try   # the shipped model on its examples
    python -m pix2pix_tf.predict labels/ --output-dir predictions                  # latest checkpoint of outputs/
    python -m pix2pix_tf.predict 'val/*.jpg' --pairs BtoA --side-by-side           # pair files: input | output | target
    python -m pix2pix_tf.predict img.png --backend savedmodel --model exports/pix2pix
    python -m pix2pix_tf.predict img.png --backend tflite --model exports/pix2pix/generator_int8.tflite
    python -m pix2pix_tf.predict img.png --backend serving-rest --server http://localhost:8501
    python -m pix2pix_tf.predict img.png --backend serving-grpc --server localhost:8500

Every backend returns an image of the input's own size; outputs are PNGs named after the inputs
(OUTPUT_DIR/<stem>.png; inputs sharing a stem keep their sub-folder, then their extension, so none
overwrites another). Existing outputs are not replaced without --overwrite. A file that cannot be read
or translated is reported in one line and skipped; the run ends with the count and exits 1 if any failed.
--resize-mode own (the default) runs the generator at that size too, padded to a multiple of 2^depth;
squash resizes to the training size and back (the default with --pretrained, whose model learned at 128 px). --test-mode paper keeps dropout and per-image batch
statistics at test time, as the paper did; eval (the default) is deterministic.

    python -m pix2pix_tf.predict labels/ --test-mode paper --resize-mode squash  # the paper's test time
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys
import urllib.error
from collections.abc import Callable

import numpy as np

from ..config import prog_name
from ..data.pairs import IMAGE_EXTENSIONS
from ..errors import UsageError
from ..files import user_path
from ..inference import MAX_PIXELS, RESIZE_MODES, TEST_MODES

BACKENDS = ("checkpoint", "savedmodel", "tflite", "serving-rest", "serving-grpc")
Translator = Callable[[np.ndarray], np.ndarray]  # uint8 [h, w, 3] -> uint8 [h, w, 3]


def expand_inputs(patterns: list[str]) -> list[str]:
    """Files named by paths, globs or folders (their JPEG/PNG files), sorted, without duplicates.

    Raises:
        UsageError: a pattern matches no image.
    """
    files: list[str] = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            found = [os.path.join(pattern, name) for name in sorted(os.listdir(pattern))]
        else:
            found = sorted(glob.glob(pattern))
        found = [path for path in found if os.path.isfile(path) and path.lower().endswith(IMAGE_EXTENSIONS)]
        if not found:
            raise UsageError(f"{pattern!r} matches no JPEG/PNG file: pass an image, a glob or a folder")
        files += [path for path in found if path not in files]
    return files


def output_names(files: list[str]) -> list[str]:
    """Each input's output file, relative to --output-dir, such that no two inputs share one.

    `<stem>.png` when the stem is the input's alone. Inputs sharing a stem (compared ignoring case,
    as the file systems of macOS and Windows do) keep their sub-folder under the folder all inputs
    share (a/x.png, b/x.jpg -> a/x.png, b/x.png), and those still sharing a name keep their extension
    too (x.png, x.jpg -> x.png.png, x.jpg.png).

    Raises:
        UsageError: two inputs would still get one output (X.png and x.png in one folder).
    """
    folders = [os.path.dirname(os.path.abspath(path)) for path in files]
    root = os.path.commonpath(folders) if files else ""
    names = [os.path.splitext(os.path.basename(path))[0] + ".png" for path in files]
    for keep_extension in (False, True):
        for i in _clashing(names):
            base = os.path.basename(files[i])
            kept = base if keep_extension else os.path.splitext(base)[0]
            names[i] = os.path.normpath(os.path.join(os.path.relpath(folders[i], root), kept + ".png"))
    clashing = _clashing(names)
    if clashing:
        first, second = (files[i] for i in clashing[:2])
        raise UsageError(f"{first} and {second} would both be written to {names[clashing[0]]}: rename one, "
                         "or translate them in two runs with different --output-dir")
    return names


def _clashing(names: list[str]) -> list[int]:
    """Indexes of the names that another name equals, ignoring case."""
    keys = [name.casefold() for name in names]
    return [i for i, key in enumerate(keys) if keys.count(key) > 1]


def output_paths(files: list[str], output_dir: str, overwrite: bool = False) -> list[str]:
    """OUTPUT_DIR/<output_names>, checked before any work.

    Raises:
        UsageError: two inputs would share an output, an output is an input, or outputs exist already and
            `overwrite` is off.
    """
    paths = [os.path.join(output_dir, name) for name in output_names(files)]
    inputs = {os.path.realpath(path) for path in files}
    same = [path for path in paths if os.path.realpath(path) in inputs]
    if same:
        raise UsageError(f"{same[0]} is an input and would be written over: pass another --output-dir")
    existing = [path for path in paths if os.path.exists(path)]
    if existing and not overwrite:
        raise UsageError(f"{len(existing)} of the {len(paths)} outputs exist already (first: {existing[0]}): pass "
                         "--overwrite to replace them, or another --output-dir")
    return paths


def latest_version_dir(path: str) -> str:
    """A SavedModel dir itself, or the highest numbered version under a TF Serving model dir."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = sorted((int(name) for name in os.listdir(path) if name.isdigit()), reverse=True) if os.path.isdir(path) else []
    for version in versions:
        if os.path.exists(os.path.join(path, str(version), "saved_model.pb")):
            return os.path.join(path, str(version))
    raise UsageError(f"no SavedModel in {path}: --model must be a version dir or EXPORT_DIR/MODEL_NAME")


def _modes_of_export(model_dir: str, args: argparse.Namespace) -> dict:
    """The modes an export was written with; an explicit --test-mode/--resize-mode that differs is an error."""
    from ..deploy.savedmodel import read_metadata

    return read_metadata(model_dir, args.test_mode, args.resize_mode, instead=", or use --backend checkpoint")


def make_translator(args: argparse.Namespace) -> Translator:
    """One image-in, image-out function for the chosen backend, in the chosen --test-mode and --resize-mode.

    Raises:
        UsageError: a mode the backend cannot run (TFLite: eval and squash only; an export: the modes it
            was written with; TF Serving: whatever the served export fixed).
    """
    import tensorflow as tf

    from ..inference import check_own_size, inference_generator, model_size, scale_mismatch, size_multiple
    from ..tasks import Task, task_for, task_for_channels

    warned = []

    def warn_scale(image: np.ndarray, trained: tuple[int, int]) -> None:
        message = "" if warned else scale_mismatch(*image.shape[:2], trained, "an input")
        if message:
            warned.append(message)
            print(f"warning: {message}", file=sys.stderr)

    def local(run: Callable, task: Task, size: tuple[int, int], resize_mode: str, multiple: int = 1) -> Translator:
        # The task's own pre/post-processing, the same the SavedModel signatures run in their graph.
        def translate(image: np.ndarray) -> np.ndarray:
            if resize_mode == "own":
                check_own_size(*image.shape[:2], multiple, args.max_pixels)
                warn_scale(image, size)
            return task.translate(run, image[np.newaxis], size, resize_mode, multiple, args.max_pixels)[0].numpy()

        return translate

    if args.backend == "checkpoint":
        from ..pretrained import load_any

        restored = load_any(args.pretrained, args.checkpoint_dir, args.keras_file)
        generator = restored.generator
        net = inference_generator(generator, args.test_mode or "eval", any_size=True)
        size, multiple = model_size(generator), size_multiple(generator)
        task = task_for(generator, restored.config)
        # A shipped model learned below the 256 px of the label maps it is given: it translates at its own size.
        resize_mode = args.resize_mode or ("squash" if args.pretrained else "own")
        return local(lambda x: net(x, training=False), task, size, resize_mode, multiple)
    if args.backend == "savedmodel":
        model_dir = latest_version_dir(args.model or "exports/pix2pix")
        metadata = _modes_of_export(model_dir, args)
        signature = tf.saved_model.load(model_dir).signatures["serving_default"]

        def saved(image: np.ndarray) -> np.ndarray:
            if metadata["resize_mode"] == "own":  # the signature would refuse it too, less clearly
                check_own_size(*image.shape[:2], metadata["size_multiple"], metadata["max_pixels"] or MAX_PIXELS)
                warn_scale(image, tuple(metadata["image_size"]))
            return signature(images=tf.constant(image[np.newaxis]))["images"][0].numpy()

        return saved
    if args.backend == "tflite":
        from ..deploy.litert import LiteRTGenerator

        if not os.path.isfile(args.model):
            raise UsageError(f"--model {args.model!r} is not a file: pass a .tflite written by export.py")
        if args.test_mode == "paper":
            raise UsageError("a .tflite generator runs in --test-mode eval only (TFLite has no kernel for dropout's "
                             "random ops): use --backend checkpoint or a SavedModel exported with --test-mode paper")
        if args.resize_mode == "own":
            raise UsageError("a .tflite generator has a fixed input size: use --resize-mode squash (its default) or "
                             "--backend checkpoint/savedmodel to translate at the image's own size")
        runner = LiteRTGenerator(args.model)
        return local(runner, task_for_channels(*runner.channels), runner.image_size, "squash")
    if args.test_mode or args.resize_mode:
        raise UsageError(f"--test-mode/--resize-mode do not apply to --backend {args.backend}: the served model runs "
                         "the modes it was exported with (python export.py --test-mode ... --resize-mode ...)")
    from ..deploy.clients import GrpcClient, RestClient, ServingError

    server = args.server or ("http://localhost:8501" if args.backend == "serving-rest" else "localhost:8500")
    client_cls = RestClient if args.backend == "serving-rest" else GrpcClient
    client = client_cls(server, args.model_name, args.version or None, timeout=args.timeout)

    def remote(image: np.ndarray) -> np.ndarray:
        try:
            (png,) = client.translate([tf.io.encode_png(image).numpy()])
        except ServingError as err:
            if _refused_input(err):  # this image only (over the served cap, say); the next one may pass
                raise UsageError(f"TF Serving refused it: {err}") from err
            raise  # unreachable, unknown model, ...: every image would fail alike, so the run stops
        return tf.io.decode_png(png, channels=3).numpy()

    return remote


def _refused_input(err: Exception) -> bool:
    """Whether TF Serving answered that the input itself is invalid (REST 400, gRPC INVALID_ARGUMENT)."""
    cause = err.__cause__
    if isinstance(cause, urllib.error.HTTPError):
        return cause.code == 400
    code = getattr(cause, "code", None)  # a grpc.RpcError
    return callable(code) and getattr(code(), "name", "") == "INVALID_ARGUMENT"


def read_input(path: str, pairs: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(input, target or None) uint8 images of one file; `pairs` names the input half of a pair file."""
    import tensorflow as tf

    from ..data.pairs import load_pair

    if pairs:
        input_image, target = load_pair(tf.constant(path), pairs)
        return input_image.numpy(), target.numpy()
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False).numpy(), None


def predict_files(
    files: list[str], outputs: list[str], translate: Translator, pairs: str = "", side_by_side: bool = False
) -> list[str]:
    """Translates each file into its output (input | output [| target] when `side_by_side`); returns the failed inputs.

    A file that cannot be read, decoded or translated (corrupt, truncated, over the size cap, refused
    by TF Serving) is reported on stderr in one line and skipped; nothing is written for it.
    """
    import tensorflow as tf

    from ..files import atomic_path

    failed = []
    for path, out_path in zip(files, outputs):
        try:
            image, target = read_input(path, pairs)
            output = translate(image)
        except (UsageError, tf.errors.OpError) as err:
            print(f"skipped {path}: {_reason(err)}", file=sys.stderr)
            failed.append(path)
            continue
        if side_by_side:
            output = np.repeat(output, 3, axis=-1) if output.shape[-1] == 1 else output  # a gray output (depth) beside RGB
            output = np.concatenate([image, output] + ([target] if target is not None else []), axis=1)
        with atomic_path(out_path) as tmp:
            tf.io.write_file(tmp, tf.io.encode_png(output))
    return failed


def _reason(err: Exception) -> str:
    """Why a file failed, in one line (TensorFlow's own text without its function-node and [Op:...] wrapping)."""
    if isinstance(err, UsageError):
        return str(err)
    text = re.sub(r"\{\{function_node [^}]*\}\}|\[Op:\w+\].*", "", err.message).strip().split("\n")[0]
    return f"not a readable image ({text or type(err).__name__})"


def build_parser() -> argparse.ArgumentParser:
    """predict's flags; every path goes through `files.user_path` (`~` expanded, also in `--flag=~/x`)."""
    parser = argparse.ArgumentParser(
        prog=prog_name("pix2pix_tf.predict"), description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("inputs", nargs="*", type=user_path,
                        help="image files, globs (quoted) or folders (with --pretrained and none given: its shipped examples)")
    parser.add_argument("--output-dir", default="predictions", type=user_path, help="where the outputs go, <input stem>.png (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that exist already instead of refusing")
    parser.add_argument("--backend", default="checkpoint", choices=BACKENDS, help="what runs the generator (default: %(default)s)")
    parser.add_argument("--checkpoint-dir", default="outputs/checkpoints", type=user_path, help="checkpoint backend: a train.py --output-dir, its checkpoints/ (latest) or one checkpoint there, RUN/checkpoints/ckpt-925 (default: %(default)s)")
    parser.add_argument("--pretrained", default="", help="checkpoint backend: a generator shipped with pix2pix_tf by name (cityscapes) instead of --checkpoint-dir")
    parser.add_argument("--keras-file", default="", type=user_path, help="checkpoint backend: a .keras generator instead of --checkpoint-dir")
    parser.add_argument("--model", default="", type=user_path, help="savedmodel: a version dir or EXPORT_DIR/MODEL_NAME (latest version); tflite: a .tflite file")
    parser.add_argument("--server", default="", help="serving-rest: http://host:8501 (default); serving-grpc: host:8500 (default)")
    parser.add_argument("--model-name", default="pix2pix", help="TF Serving model name (default: %(default)s)")
    parser.add_argument("--version", type=int, default=0, help="TF Serving model version; 0 = the latest served")
    parser.add_argument("--timeout", type=float, default=30.0, help="TF Serving request timeout in seconds (default: %(default)s)")
    parser.add_argument("--pairs", default="", choices=("AtoB", "BtoA"), help="inputs are side-by-side pairs; AtoB translates the LEFT half")
    parser.add_argument("--side-by-side", action="store_true", help="write input | output (| target with --pairs) instead of the output alone")
    parser.add_argument("--test-mode", default=None, choices=TEST_MODES,
                        help="eval: training=False, deterministic; paper: dropout on and per-image batch statistics, as "
                        "in the paper (default: eval; a SavedModel: the mode it was exported with; not for tflite)")
    parser.add_argument("--resize-mode", default=None, choices=RESIZE_MODES,
                        help="own: translate at the image's own size (padded to a multiple of 2^depth); squash: at the "
                        "training size (default: own; --pretrained: squash; a SavedModel: as exported; tflite: squash, its only mode)")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                        help="checkpoint backend, own size: largest padded image (height x width) accepted "
                        "(default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The predict command: exit 0 when every input was translated, 1 when some failed, 2 on a usage error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backend == "tflite" and not args.model:
        parser.error("--backend tflite needs --model PATH.tflite")
    if args.max_pixels < 1:
        parser.error(f"--max-pixels must be >= 1, got {args.max_pixels}")
    if args.pretrained and args.backend != "checkpoint":
        parser.error(f"--pretrained runs on --backend checkpoint, not {args.backend}: drop --backend")
    if not args.inputs and not args.pretrained:
        parser.error("no inputs: pass image files, globs or folders")
    try:
        if not args.inputs:
            from ..pretrained import example_files

            args.inputs = example_files(args.pretrained)
            print(f"translating the {len(args.inputs)} example label maps shipped with {args.pretrained!r}")
        files = expand_inputs(args.inputs)
        outputs = output_paths(files, args.output_dir, args.overwrite)
        from ..deploy.clients import ServingError

        try:
            failed = predict_files(files, outputs, make_translator(args), args.pairs, args.side_by_side)
        except ServingError as err:
            raise UsageError(str(err)) from err
    except UsageError as err:
        parser.error(str(err))  # one line, exit code 2
    written = len(files) - len(failed)
    print(f"wrote {written} images to {args.output_dir} (translated {written}, failed {len(failed)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
