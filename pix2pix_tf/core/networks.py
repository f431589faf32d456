"""The paper's networks: a U-Net generator and a 70x70 PatchGAN discriminator (Isola et al. 2017, App. 6.1.1)."""

from __future__ import annotations

import contextlib

import keras
from keras import layers

from .layers import FusableLeakyReLU, FusedBatchNormalization, TapGradConv2D, TapGradConv2DTranspose

INIT_STDDEV = 0.02  # the paper's weight init: N(0, 0.02)


def _init() -> keras.initializers.Initializer:
    """A fresh N(0, 0.02) initializer for one layer.

    Keras 3 fixes an initializer instance's seed when it is created, so one instance shared by every
    layer would give all layers of the same shape the SAME starting weights (down5-down7 and up1 at
    256 px). A new instance per layer draws its own seed from the global one (keras.utils.set_random_seed).
    """
    return keras.initializers.RandomNormal(mean=0.0, stddev=INIT_STDDEV)


LEAK = 0.2  # encoder and discriminator LeakyReLU slope
# PyTorch's BatchNorm defaults, as in the paper's reference code (Keras' own are 0.99 / 1e-3).
BN_MOMENTUM, BN_EPSILON = 0.9, 1e-5
# The layers G and D are built with: Keras' own maths in kernels TensorFlow fuses (core/layers.py).
# `reference_layers()` swaps Keras' own classes back in, for the tests and benchmarks that compare them;
# `kernel_weight_gradients()` only the convs, where their tap-wise weight gradient does not pay.
BATCH_NORM, BIAS_ACTIVATION = FusedBatchNormalization, FusableLeakyReLU
CONV, DECONV = TapGradConv2D, TapGradConv2DTranspose


@contextlib.contextmanager
def _layer_classes(**classes):
    saved = {name: globals()[name] for name in classes}
    globals().update(classes)
    try:
        yield
    finally:
        globals().update(saved)


def reference_layers():
    """Builds inside the block use Keras' own BatchNormalization, LeakyReLU and convs (the unfused step)."""
    return _layer_classes(BATCH_NORM=layers.BatchNormalization, BIAS_ACTIVATION=layers.LeakyReLU,
                          CONV=layers.Conv2D, DECONV=layers.Conv2DTranspose)


def kernel_weight_gradients(enabled: bool = True):
    """Builds inside the block use Keras' own convs: TensorFlow's kernel computes their weight gradients.

    `enabled=False` changes nothing: the callers pass `not precision.weight_gradients_by_taps(...)`.
    """
    return _layer_classes(CONV=layers.Conv2D, DECONV=layers.Conv2DTranspose) if enabled else contextlib.nullcontext()


def _norm(kind: str, name: str) -> layers.Layer:
    if kind == "batch":
        return BATCH_NORM(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)
    if kind == "instance":
        # One group per channel is instance normalization.
        return layers.GroupNormalization(groups=-1, epsilon=BN_EPSILON, name=name)
    raise ValueError(f"unknown norm {kind!r}: use 'batch' or 'instance'")


def _ck(x, k: int, name: str, norm: str | None, stride: int = 2, padding: str = "same", leak: float = LEAK):
    """Ck: 4x4 Convolution-Norm-LeakyReLU(0.2); a bias exactly where no normalization follows."""
    x = CONV(k, 4, stride, padding=padding, use_bias=norm is None, kernel_initializer=_init(), name=f"{name}_conv")(x)
    if norm is not None:
        x = _norm(norm, f"{name}_norm")(x)
    # Without a norm the conv's bias add feeds the activation directly; see FusableLeakyReLU for why that matters.
    activation = layers.LeakyReLU if norm is not None else BIAS_ACTIVATION
    return activation(negative_slope=leak, name=f"{name}_relu")(x)


def _cdk(x, k: int, name: str, norm: str, dropout: bool):
    """CDk (Ck with dropout 0.5 when `dropout`): 4x4 stride-2 TransposedConv-Norm-[Dropout]-ReLU."""
    x = DECONV(k, 4, 2, padding="same", use_bias=False, kernel_initializer=_init(), name=f"{name}_deconv")(x)
    x = _norm(norm, f"{name}_norm")(x)
    if dropout:
        x = layers.Dropout(0.5, name=f"{name}_dropout")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def unet_filters(depth: int, base: int = 64) -> list[int]:
    """Encoder widths C64-C128-C256-C512-C512-C512-C512-C512, truncated to `depth`."""
    return [base * min(2**i, 8) for i in range(depth)]


def build_generator(
    image_size: tuple[int, int] = (256, 256),
    input_channels: int = 3,
    output_channels: int = 3,
    filters: int = 64,
    depth: int = 8,
    norm: str = "batch",
) -> keras.Model:
    """U-Net generator.

    encoder: C64-C128-C256-C512-C512-C512-C512-C512 (no norm on the first and innermost conv)
    decoder: CD512-CD512-CD512-C512-C256-C128-C64, each concatenated with the mirrored encoder
    output, then a 4x4 transposed conv to `output_channels` and tanh. Dropout sits on the first
    three decoder blocks as the paper's text says (the reference code shifts it one block down).

    Args:
        image_size: (height, width), each a multiple of 2**depth.
        input_channels: channels of the conditioning image x.
        output_channels: channels of the generated image G(x).
        filters: ngf, the width of the first layer.
        depth: number of stride-2 downsamples (8 gives a 1x1 bottleneck at 256x256).
        norm: "batch" or "instance".

    Returns:
        A functional `keras.Model` mapping `input_image` [N, H, W, Cin] to [N, H, W, Cout] in [-1, 1].
    """
    height, width = image_size
    if height % 2**depth or width % 2**depth:
        raise ValueError(f"image size {height}x{width} is not a multiple of 2**depth = {2**depth}")
    widths = unet_filters(depth, filters)
    x = inputs = keras.Input((height, width, input_channels), name="input_image")
    skips = []
    for i, k in enumerate(widths):
        innermost, outermost = i == depth - 1, i == 0
        # The innermost output feeds the decoder, whose ReLUs the paper makes not leaky.
        leak = 0.0 if innermost else LEAK
        x = _ck(x, k, f"down{i + 1}", None if (innermost or outermost) else norm, leak=leak)  # [N, H/2^(i+1), W/2^(i+1), k]
        skips.append(x)
    skips.pop()  # the bottleneck is not concatenated with itself
    num_dropout = 0
    for i, k in enumerate(reversed(widths[:-1])):
        dropout = num_dropout < 3 and k == widths[-1]
        num_dropout += dropout
        x = _cdk(x, k, f"up{i + 1}", norm, dropout)  # [N, 2h, 2w, k]
        x = layers.Concatenate(name=f"skip{i + 1}")([x, skips.pop()])  # [N, 2h, 2w, 2k]
    x = DECONV(output_channels, 4, 2, padding="same", kernel_initializer=_init(), name="output_deconv")(x)
    # tanh in float32 so the [-1, 1] range survives mixed precision.
    outputs = layers.Activation("tanh", dtype="float32", name="output_tanh")(x)  # [N, H, W, Cout]
    return keras.Model(inputs, outputs, name="generator")


def build_discriminator(
    image_size: tuple[int, int] = (256, 256),
    input_channels: int = 3,
    target_channels: int = 3,
    filters: int = 64,
    norm: str = "batch",
) -> keras.Model:
    """70x70 PatchGAN: C64-C128-C256-C512, then a 1-channel conv giving one logit per patch.

    It judges the pair concat(x, y): a conditional GAN's discriminator must see the input to
    tell whether the output is a plausible translation *of it*, not just a plausible photo.
    All convs are 4x4 with 1 px zero padding (stride 2, 2, 2, 1, 1), so 256x256 gives 30x30 logits.

    Returns:
        A functional `keras.Model` taking `input_image` and `target_image`, returning raw logits
        [N, H/8 - 2, W/8 - 2, 1] (float32).
    """
    height, width = image_size
    x_in = keras.Input((height, width, input_channels), name="input_image")
    y_in = keras.Input((height, width, target_channels), name="target_image")
    x = layers.Concatenate(name="pair")([x_in, y_in])  # [N, H, W, Cin + Cout]
    for i, (k, stride) in enumerate(zip([filters, 2 * filters, 4 * filters, 8 * filters], [2, 2, 2, 1])):
        x = layers.ZeroPadding2D(1, name=f"pad{i + 1}")(x)
        x = _ck(x, k, f"disc{i + 1}", None if i == 0 else norm, stride=stride, padding="valid")
    x = layers.ZeroPadding2D(1, name="pad5")(x)  # [N, H/8, W/8, 8 * filters] before the last two convs
    logits = CONV(1, 4, 1, kernel_initializer=_init(), dtype="float32", name="patch_logits")(x)  # [N, H/8-2, W/8-2, 1]
    return keras.Model([x_in, y_in], logits, name="discriminator")
