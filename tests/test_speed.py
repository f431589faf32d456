"""The fast path: auto settings, mixed-precision steps, several steps per call, and the decoded-pair cache."""

import inspect
import json
import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf.config import TrainConfig, UsageError
from pix2pix_tf.data.pairs import cache_file, list_images, make_eval_dataset, make_train_dataset, train_cache_file
from pix2pix_tf.precision import dtype_policy, resolve_precision, weight_gradients_by_taps
from pix2pix_tf.train.loop import build_pix2pix
from pix2pix_tf.train.optimizers import FusedAdam
from pix2pix_tf.train.runtime import resolve_jit_compile


def test_auto_settings_follow_the_hardware():
    assert resolve_precision("auto", gpu=None, flags={"avx2", "avx512_bf16"}) == "bf16"
    assert resolve_precision("auto", gpu=None, flags={"avx2", "amx_bf16"}) == "bf16"
    assert resolve_precision("auto", gpu=None, flags={"avx2", "avx512f"}) == "fp32"
    assert resolve_precision("auto", gpu=(9, 0)) == "bf16"  # H100
    assert resolve_precision("auto", gpu=(7, 5)) == "fp16"  # T4
    assert resolve_precision("auto", gpu=(6, 1)) == "fp32"
    assert resolve_precision("fp32", gpu=(9, 0)) == "fp32"
    assert resolve_jit_compile("auto", on_gpu=True) is True
    assert resolve_jit_compile("auto", on_gpu=False) is False
    assert resolve_jit_compile("auto", on_gpu=True, deterministic=True) is False
    assert resolve_jit_compile("on", on_gpu=False) is True


def test_dtype_policy_is_scoped():
    before = keras.mixed_precision.global_policy().name
    with dtype_policy("bf16"):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == before


def _keras_changed(what: str, where: str) -> str:
    return (
        f"keras {keras.__version__} changed private API that pix2pix_tf's fast path relies on: {what}. Adapt {where} "
        "to the new Keras (or, for FusedAdam, let train.optimizers.make_optimizer use keras.optimizers.Adam), run "
        "tests/test_speed.py, then pin the new keras version in requirements.txt and pyproject.toml"
    )


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_keras_private_api_of_the_fast_path_is_unchanged(monkeypatch):
    """FusedAdam and Pix2Pix override private Keras API; keras is pinned, and this says what to fix on a bump."""
    fused_adam, hook = "FusedAdam in pix2pix_tf/train/optimizers.py", "Pix2Pix._maybe_symbolic_build in pix2pix_tf/core/model.py"
    assert _parameters(keras.optimizers.Adam.update_step) == ["self", "gradient", "variable", "learning_rate"], (
        _keras_changed("Optimizer.update_step(gradient, variable, learning_rate) has another signature", fused_adam))
    assert _parameters(getattr(keras.optimizers.Adam, "_get_variable_index", lambda: None)) == ["self", "variable"], (
        _keras_changed("Optimizer._get_variable_index(variable) is gone or takes other arguments", fused_adam))
    hook_parameters = _parameters(getattr(keras.Model, "_maybe_symbolic_build", lambda: None))
    assert hook_parameters == ["self", "iterator", "data_batch"], (
        _keras_changed("Model._maybe_symbolic_build(iterator, data_batch) is gone or takes other arguments", hook))

    class Probe(keras.Model):  # fit() must still call the hook, or Pix2Pix's override silently stops working
        calls = 0

        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

        def _maybe_symbolic_build(self, *args, **kwargs):
            Probe.calls += 1
            return super()._maybe_symbolic_build(*args, **kwargs)

    probe = Probe()
    probe.compile(optimizer="sgd", loss="mse")
    probe.fit(np.ones((2, 3), "float32"), np.ones((2, 1), "float32"), epochs=1, verbose=0)
    assert Probe.calls >= 1, _keras_changed("fit() no longer calls Model._maybe_symbolic_build", hook)

    # Variables of several sizes; the rate halves after 2 steps (a schedule reaches update_step as a tensor).
    shapes = [(), (5,), (4, 3), (2, 3, 4, 2)]
    rng = np.random.RandomState(0)
    starts = [np.asarray(rng.randn(*shape), "float32") for shape in shapes]
    grads = [[np.asarray(rng.randn(*shape), "float32") for shape in shapes] for _ in range(4)]
    fused_calls = []
    apply_adam = tf.raw_ops.ResourceApplyAdam
    monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdam", lambda **kw: fused_calls.append(1) or apply_adam(**kw))
    results = {}
    for cls in (keras.optimizers.Adam, FusedAdam):
        variables = [keras.Variable(start) for start in starts]
        rate = keras.optimizers.schedules.PiecewiseConstantDecay([1], [1e-2, 5e-3])
        optimizer = cls(learning_rate=rate, beta_1=0.5)
        optimizer.build(variables)
        slots = [getattr(optimizer, "_momentums", None), getattr(optimizer, "_velocities", None)]
        assert all(s is not None and [v.shape for v in s] == [v.shape for v in variables] for s in slots), (
            _keras_changed("Adam keeps its m and v slots in _momentums / _velocities no longer", fused_adam))
        assert [optimizer._get_variable_index(v) for v in variables] == list(range(len(shapes))), (
            _keras_changed("_get_variable_index no longer numbers the variables as build() got them", fused_adam))
        for step_grads in grads:
            optimizer.apply([tf.constant(g) for g in step_grads], variables)
        results[cls] = [v.numpy() for v in variables] + [v.numpy() for s in slots for v in s]
    assert len(fused_calls) == len(shapes) * len(grads), "FusedAdam fell back to Keras' unfused update"
    assert max(np.abs(a - b).max() for a, b in zip(results[FusedAdam], starts)) > 0.01  # it moved
    # Tolerance: float32 rounding (the kernel folds the bias correction into the step size, Keras divides).
    for fused, plain in zip(results[FusedAdam], results[keras.optimizers.Adam], strict=True):
        np.testing.assert_allclose(fused, plain, rtol=1e-5, atol=2e-6, err_msg=_keras_changed(
            "FusedAdam's update no longer matches keras.optimizers.Adam", fused_adam))


def _tiny(pair_dir, **kwargs) -> TrainConfig:
    return TrainConfig(data_dir=pair_dir, image_size=32, batch_size=4, generator_filters=8, discriminator_filters=8, seed=1, **kwargs)


def _batch(pair_dir, config):
    return next(iter(make_eval_dataset(list_images(pair_dir, "train"), config, batch_size=4)))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_step_runs_several_steps_per_call(pair_dir, precision):
    config = _tiny(pair_dir, precision=precision, steps_per_execution=2)
    model = build_pix2pix(config)
    assert keras.mixed_precision.global_policy().name == "float32"  # nothing leaks to later models
    compute = {"bf16": "bfloat16", "fp16": "float16"}[precision]
    assert model.generator.get_layer("down2_conv").compute_dtype == compute
    # bf16 on a CPU without AMX builds convs with tap-wise weight gradients; fp16 (and an AMX CPU) Keras' own.
    taps = weight_gradients_by_taps(precision)
    assert type(model.generator.get_layer("down2_conv")).__name__ == ("TapGradConv2D" if taps else "Conv2D")
    assert model.generator.get_layer("down2_conv").kernel.dtype == "float32"  # master weights stay float32
    assert isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "fp16")
    x, y = _batch(pair_dir, config)
    history = model.fit(tf.data.Dataset.from_tensors((x, y)).repeat(), epochs=1, steps_per_epoch=4, shuffle=False, verbose=0)
    # 4 steps in 2 calls of 2 steps each.
    assert int(model.d_optimizer.iterations) == 4 and model.train_function is not None
    assert all(np.isfinite(values[-1]) for values in history.history.values())
    assert model.generator(x, training=False).dtype == tf.float32  # the tanh runs in float32
    assert model.discriminator([x, y], training=False).dtype == tf.float32


def test_bf16_trains_to_where_fp32_does(pair_dir):
    """Same fixed tiny overfitting run in both precisions: the final L1 agrees within 10%."""
    final_l1 = {}
    for precision in ("fp32", "bf16"):
        config = _tiny(pair_dir, precision=precision)
        keras.utils.set_random_seed(1)
        model = build_pix2pix(config)
        x, y = _batch(pair_dir, config)
        before = float(tf.reduce_mean(tf.abs(model.generator(x, training=False) - y)))
        model.fit(tf.data.Dataset.from_tensors((x, y)).repeat(60), epochs=1, shuffle=False, verbose=0)
        final_l1[precision] = float(tf.reduce_mean(tf.abs(model.generator(x, training=False) - y)))
        assert final_l1[precision] < 0.9 * before, (precision, before, final_l1[precision])  # it trained
    assert abs(final_l1["bf16"] - final_l1["fp32"]) <= 0.1 * final_l1["fp32"], final_l1


def _simulate_gpu(monkeypatch, capability):
    """build_pix2pix resolves --precision/--jit-compile auto as on a GPU of this compute capability."""
    from pix2pix_tf.train import loop as training

    monkeypatch.setattr(training, "gpu_compute_capability", lambda: capability)


@pytest.mark.parametrize(
    "capability,precision,train_it",
    # A100, T4, a Pascal card; one XLA-compiled run (the loss-scaled one: its skip/unscale conds run inside XLA)
    # keeps the CPU compile time down, the others check what the build resolved to.
    [((8, 0), "bf16", False), ((7, 5), "fp16", True), ((6, 1), "fp32", False)],
)
def test_simulated_gpu_builds_and_runs_the_gpu_path_on_cpu(pair_dir, monkeypatch, capability, precision, train_it):
    """The auto settings for a GPU (mixed precision, loss scaling, XLA) built as on one and run on the CPU."""
    _simulate_gpu(monkeypatch, capability)
    config = _tiny(pair_dir, steps_per_execution=2)  # --precision auto, --jit-compile auto
    model = build_pix2pix(config)
    assert model.jit_compile is True  # auto = XLA with a GPU
    compute = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[precision]
    assert model.generator.get_layer("down2_conv").compute_dtype == compute
    # The tap-wise weight gradients are for CPUs without AMX: on a GPU the convs are Keras' own.
    assert {type(model.generator.get_layer(n)).__name__ for n in ("down2_conv", "up1_deconv")} == {"Conv2D", "Conv2DTranspose"}
    loss_scaled = isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert loss_scaled == isinstance(model.d_optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "fp16")
    if not train_it:
        return
    x, y = _batch(pair_dir, config)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    history = model.fit(data, epochs=1, steps_per_epoch=4, shuffle=False, verbose=0)
    assert all(np.isfinite(values[-1]) for values in history.history.values()), history.history
    for optimizer in (model.g_optimizer, model.d_optimizer):
        applied = int(optimizer.iterations)
        if loss_scaled:
            # Dynamic loss scaling: every skipped (overflowing) step halves the scale from 2^15; the rest count.
            assert "dynamic_scale" in [v.path.split("/")[-1] for v in optimizer.variables]
            scale = float(optimizer.dynamic_scale)
            assert scale == 2.0**15 / 2 ** (4 - applied), (applied, scale)
        else:
            assert applied == 4  # 2 XLA calls of 2 steps each
    assert model.generator(x, training=False).dtype == tf.float32


def test_fp16_run_checkpoints_and_resumes(pair_dir, tmp_path, monkeypatch):
    """fp16's LossScaleOptimizer skips and does not count overflowing steps; checkpoints still count every step."""
    from pix2pix_tf.train import callbacks as cb
    from pix2pix_tf.train.checkpointing import make_checkpoint
    from pix2pix_tf.train.guards import Interrupted
    from pix2pix_tf.train.loop import train

    out = tmp_path / "run"
    settings = {"image_size": 32, "batch_size": 4, "generator_filters": 4, "discriminator_filters": 4, "val_steps": 1,
                "num_samples": 0, "epochs": 2, "precision": "fp16", "checkpoint_every": 0}

    def config(**overrides):
        paths = {"output_dir": str(out), "log_file": str(out / "log.txt")}
        return TrainConfig(data_dir=pair_dir, **paths, **{**settings, **overrides})

    steps = []

    def stop_after_step_4(self, batch, logs=None):
        steps.append(batch)
        if len(steps) == 4:  # the 1st of epoch 2's 3 steps
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(cb.Throughput, "on_train_batch_end", stop_after_step_4)
    with pytest.raises(Interrupted, match="at step 4"):
        train(config())
    assert tf.train.latest_checkpoint(str(out / "checkpoints")).endswith("ckpt-4")
    monkeypatch.undo()
    train(config())  # resumes mid-epoch in fp16
    assert "step 1 of the next" in (out / "log.txt").read_text()
    rows = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in rows] == [1, 2]
    assert all(np.isfinite(row[key]) for row in rows for key in ("g_total", "d_total", "val_g_total"))
    latest = tf.train.latest_checkpoint(str(out / "checkpoints"))
    assert latest.endswith("ckpt-6")  # numbered by train steps run, skipped ones included
    # The checkpoint holds the inner Adam, so an fp32 model restores it (and resumes) as well.
    restored = make_checkpoint(build_pix2pix(config(precision="fp32")))
    restored.restore(latest).assert_existing_objects_matched()
    assert int(restored.step) == 6 and int(restored.epoch) == 2
    assert 0 <= int(restored.g_optimizer.iterations) <= 6


def _batches(files, config, count, start_step=0):
    return [(x.numpy(), y.numpy()) for x, y in make_train_dataset(files, config, start_step).take(count)]


def test_cached_pairs_give_the_same_batches(pair_dir, tmp_path):
    files = list_images(pair_dir, "train")  # 12 files: 7 batches of 4 cross two reshuffles
    reference = _batches(files, _tiny(pair_dir, cache="none", deterministic=True), 7)
    cache_dir = str(tmp_path / "cache")
    for cache in ("memory", cache_dir, cache_dir):  # the folder twice: written, then read back
        batches = _batches(files, _tiny(pair_dir, cache=cache, deterministic=True), 7)
        for (x, y), (x_ref, y_ref) in zip(batches, reference, strict=True):
            np.testing.assert_array_equal(x, x_ref)
            np.testing.assert_array_equal(y, y_ref)
    prefix = train_cache_file(files, _tiny(pair_dir, cache=cache_dir))
    assert os.path.exists(prefix + ".index")
    # Resuming skips into the cached stream exactly as into the uncached one.
    resumed = _batches(files, _tiny(pair_dir, cache=cache_dir, deterministic=True), 2, start_step=5)
    np.testing.assert_array_equal(resumed[0][0], reference[5][0])
    # Another direction is another cache; a lockfile left by a killed run is cleared.
    other = cache_file(cache_dir, files, "AtoB")
    assert other != prefix
    open(other + ".lockfile", "w").close()
    cache_file(cache_dir, files, "AtoB")
    assert not os.path.exists(other + ".lockfile")


def test_cache_folder_that_cannot_be_made_is_a_usage_error(pair_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UsageError, match="cannot create the cache folder"):
        cache_file(str(blocker / "cache"), list_images(pair_dir, "train"), "BtoA")


def test_speed_flags_are_validated(pair_dir):
    with pytest.raises(UsageError, match="--steps-per-execution must be >= 1"):
        _tiny(pair_dir, steps_per_execution=0)
    with pytest.raises(UsageError, match="--cache is empty"):
        _tiny(pair_dir, cache="")


def test_cache_auto_picks_memory_only_when_the_split_fits(pair_dir, monkeypatch):
    import pix2pix_tf.data.pairs as data

    files = list_images(pair_dir, "train")
    config = _tiny(pair_dir, cache="auto")
    assert data.resolve_cache(files, config) == "memory"  # 12 small pairs
    monkeypatch.setattr(data, "CACHE_RAM_SHARE", 1e-12)  # as if the split were larger than RAM allows
    assert data.resolve_cache(files, config) == "none"
    assert data.resolve_cache(files, _tiny(pair_dir, cache="memory")) == "memory"  # an explicit choice stands


def test_fp16_resume_continues_from_the_saved_loss_scale(pair_dir, tmp_path, monkeypatch):
    """The loss scale is in the checkpoint; a checkpoint without one (written under fp32) still resumes in fp16."""
    from pix2pix_tf.train import callbacks as cb
    from pix2pix_tf.train.guards import Interrupted
    from pix2pix_tf.train.loop import train

    class Overflowing(keras.optimizers.LossScaleOptimizer):
        def __init__(self, inner_optimizer, **kwargs):  # fp16 gradients overflow: every step skipped, scale halved
            super().__init__(inner_optimizer, **{**kwargs, "initial_scale": 2.0**60})

    monkeypatch.setattr(keras.optimizers, "LossScaleOptimizer", Overflowing)
    settings = {"image_size": 32, "batch_size": 4, "generator_filters": 4, "discriminator_filters": 4, "val_steps": 1,
                "num_samples": 0, "epochs": 2, "precision": "fp16", "checkpoint_every": 0}

    def config(out, **overrides):
        paths = {"output_dir": str(out), "log_file": str(out / "log.txt")}
        return TrainConfig(data_dir=pair_dir, **paths, **{**settings, **overrides})

    scales = []

    def begin(self, batch, logs=None):
        if hasattr(self.model.g_optimizer, "dynamic_scale"):  # fp16 runs only
            scales.append([float(opt.dynamic_scale) for opt in (self.model.g_optimizer, self.model.d_optimizer)])

    def stop_after_step_2(self, batch, logs=None):
        if len(scales) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(cb.LearningRate, "on_train_batch_begin", begin, raising=False)
    monkeypatch.setattr(cb.LearningRate, "on_train_batch_end", stop_after_step_2, raising=False)
    with pytest.raises(Interrupted, match="at step 2"):
        train(config(tmp_path / "run"))
    assert scales == [[2.0**60] * 2, [2.0**59] * 2]
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")))
    assert reader.get_tensor("loss_scale/0/.ATTRIBUTES/VARIABLE_VALUE") == 2.0**58  # G's, after 2 skips
    monkeypatch.setattr(cb.LearningRate, "on_train_batch_end", lambda self, batch, logs=None: None, raising=False)
    scales.clear()
    train(config(tmp_path / "run"))
    assert scales[0] == [2.0**58] * 2 and scales[-1] == [2.0**55] * 2  # steps 3-5 continue halving from there

    train(config(tmp_path / "switched", precision="fp32", epochs=1))
    scales.clear()
    train(config(tmp_path / "switched"))  # an fp32 checkpoint: no loss scale saved, fp16 starts from the initial one
    assert scales[0] == [2.0**60] * 2 and len(scales) == 3
