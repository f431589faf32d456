"""Architecture: the paper's parameter counts and output shapes (built, not trained)."""

import keras
import numpy as np
import pytest

from pix2pix_tf.core.networks import build_discriminator, build_generator


def _trainable(model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def test_generator_full_size_parameter_count_and_shape():
    g = build_generator()
    assert g.count_params() == 54_424_387
    assert _trainable(g) == 54_414_531
    assert tuple(g.output.shape) == (None, 256, 256, 3)
    assert [layer.name for layer in g.layers if "norm" in layer.name][:1] == ["down2_norm"]  # no BN on the first conv
    assert "down8_norm" not in {layer.name for layer in g.layers}  # nor on the innermost
    assert g.get_layer("down1_conv").use_bias and g.get_layer("down8_conv").use_bias
    assert not g.get_layer("down2_conv").use_bias and g.get_layer("output_deconv").use_bias
    assert [n for n in (layer.name for layer in g.layers) if "dropout" in n] == ["up1_dropout", "up2_dropout", "up3_dropout"]


def test_discriminator_full_size_parameter_count_and_patch_map():
    d = build_discriminator()
    assert d.count_params() == 2_770_497
    assert _trainable(d) == 2_768_705
    assert tuple(d.output.shape) == (None, 30, 30, 1)
    assert tuple(build_discriminator((256, 512)).output.shape) == (None, 30, 62, 1)


def test_wide_generator_and_tiny_forward_pass_range():
    assert tuple(build_generator((256, 512)).output.shape) == (None, 256, 512, 3)
    g = build_generator((32, 32), filters=4, depth=5)
    y = g(np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32"), training=False).numpy()
    assert y.shape == (2, 32, 32, 3) and np.all(np.abs(y) <= 1.0)


def test_weights_drawn_from_n_0_002():
    kernel = build_generator((256, 256)).get_layer("down5_conv").kernel.numpy()
    assert abs(kernel.mean()) < 1e-3 and kernel.std() == pytest.approx(0.02, rel=0.02)


def test_instance_norm_and_channel_options_build():
    g = build_generator((64, 64), input_channels=1, output_channels=2, filters=8, depth=6, norm="instance")
    d = build_discriminator((64, 64), input_channels=1, target_channels=2, filters=8, norm="instance")
    assert tuple(g.output.shape) == (None, 64, 64, 2)
    assert tuple(d.output.shape) == (None, 6, 6, 1)
    assert any(layer.__class__.__name__ == "GroupNormalization" for layer in g.layers)


def test_size_not_multiple_of_depth_is_refused():
    with pytest.raises(ValueError, match="multiple of 2\\*\\*depth"):
        build_generator((96, 96), depth=6)


def test_every_layer_starts_from_its_own_draw_and_the_seed_reproduces_it():
    def kernels(seed):
        keras.utils.set_random_seed(seed)
        generator = build_generator((64, 64), filters=8, depth=6)  # down4..down6 and up1 share shapes
        return {layer.name: layer.kernel.numpy() for layer in generator.layers if hasattr(layer, "kernel")}

    first = kernels(3)
    by_shape = {}
    for name, kernel in first.items():
        by_shape.setdefault(kernel.shape, []).append((name, kernel))
    shared = [group for group in by_shape.values() if len(group) > 1]
    assert shared, "the test needs layers of equal shape"
    for group in shared:
        for i, (name_a, a) in enumerate(group):
            for name_b, b in group[i + 1 :]:
                assert not np.array_equal(a, b), f"{name_a} and {name_b} start from identical weights"
    for kernel in first.values():
        assert abs(float(kernel.std()) - 0.02) < 0.005  # N(0, 0.02), the paper's init
    again = kernels(3)
    assert all(np.array_equal(first[name], again[name]) for name in first)
