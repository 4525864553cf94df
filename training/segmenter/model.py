"""A Keras 3 ResNet-UNet: ResNet18/34 basic-block encoder of configurable width, UNet decoder, sigmoid output."""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path

import keras
import numpy as np
from keras import layers

from dermassist.base.settings import Settings, variable_name
from preprocess.contract import IMAGENET_MEAN, IMAGENET_STD, SEG_SIZE

from ..errors import TrainingConfigError, check_setting_range

logger = logging.getLogger(__name__)

BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
INPUT_NAME = "seg_input"


@dataclass(frozen=True)
class UNetConfig(Settings):
    """Encoder depth (18 or 34), width multiplier of the ResNet channels, optional local encoder weights."""

    env_prefix = "DERMASSIST_SEG_"
    config_error = TrainingConfigError

    depth: int = 18
    width: float = 0.25
    encoder_weights: Path | None = None

    def __post_init__(self) -> None:
        if self.depth not in BLOCKS:
            raise TrainingConfigError(f"UNet encoder depth must be one of {sorted(BLOCKS)}, got {self.depth}")
        check_setting_range(self.width, f"--width / {variable_name(type(self), 'width')}", 0.03, 2.0,
                            meaning="the UNet's channel width multiplier",
                            default=next(f.default for f in fields(self) if f.name == "width"))
        if self.encoder_weights is not None and not Path(self.encoder_weights).is_file():
            raise TrainingConfigError(
                f"encoder weights file {self.encoder_weights} does not exist; give a local .weights.h5 "
                "saved from this encoder, or leave it out to start from random weights"
            )


# Training crashed inside oneDNN (heap corruption / segfault) with 8-channel encoder layers, and
# with 4-channel layers anywhere; these floors keep tiny test widths safe.
MIN_ENCODER_CHANNELS = 16
MIN_DECODER_CHANNELS = 8


def _ch(base: int, width: float, floor: int = MIN_ENCODER_CHANNELS) -> int:
    return max(floor, int(round(base * width)))


def _conv_bn(x: keras.KerasTensor, filters: int, kernel: int, strides: int, name: str,
             act: bool = True) -> keras.KerasTensor:
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if act else x


def _basic_block(x: keras.KerasTensor, filters: int, strides: int, name: str) -> keras.KerasTensor:
    shortcut = x
    y = _conv_bn(x, filters, 3, strides, f"{name}_a")
    y = _conv_bn(y, filters, 3, 1, f"{name}_b", act=False)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, strides, f"{name}_proj", act=False)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def _decoder_block(x: keras.KerasTensor, skip: keras.KerasTensor | None, filters: int, name: str) -> keras.KerasTensor:
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(x)
    if skip is not None:
        x = layers.Concatenate(name=f"{name}_cat")([x, skip])
    x = _conv_bn(x, filters, 3, 1, f"{name}_1")
    return _conv_bn(x, filters, 3, 1, f"{name}_2")


def build_encoder(inputs: keras.KerasTensor, config: UNetConfig) -> tuple[keras.Model, list]:
    """The ResNet encoder as its own model (so its weights can be saved / loaded) and its skip tensors."""
    x = layers.Normalization(
        mean=list(IMAGENET_MEAN), variance=[s * s for s in IMAGENET_STD], name="imagenet_norm"
    )(inputs)
    stem = _conv_bn(x, _ch(64, config.width), 7, 2, "stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(stem)
    skips = [stem]
    for stage, (n_blocks, base) in enumerate(zip(BLOCKS[config.depth], (64, 128, 256, 512)), start=1):
        for b in range(n_blocks):
            x = _basic_block(x, _ch(base, config.width), 2 if (b == 0 and stage > 1) else 1, f"layer{stage}_{b}")
        skips.append(x)
    encoder = keras.Model(inputs, skips, name=f"resnet{config.depth}_encoder")
    return encoder, skips


def build_resnet_unet(config: UNetConfig = UNetConfig()) -> keras.Model:
    """ResNet-UNet mapping (N, 256, 256, 3) RGB in [0, 1] to (N, 256, 256, 1) lesion probabilities.

    ImageNet normalisation is a layer of the model, as the serving contract requires.
    """
    inputs = keras.Input((SEG_SIZE, SEG_SIZE, 3), name=INPUT_NAME)
    encoder, _ = build_encoder(inputs, config)
    if config.encoder_weights is not None:
        encoder.load_weights(str(config.encoder_weights))
        logger.info("encoder weights loaded from %s", config.encoder_weights)
    stem, l1, l2, l3, l4 = encoder(inputs)
    w = config.width
    floor = MIN_DECODER_CHANNELS
    x = _decoder_block(l4, l3, _ch(256, w, floor), "dec3")
    x = _decoder_block(x, l2, _ch(128, w, floor), "dec2")
    x = _decoder_block(x, l1, _ch(64, w, floor), "dec1")
    x = _decoder_block(x, stem, _ch(32, w, floor), "dec0")
    logits = layers.Conv2D(1, 1, name="lesion_logits")(x)
    logits = layers.UpSampling2D(2, interpolation="bilinear", name="full_res")(logits)
    outputs = layers.Activation("sigmoid", dtype="float32", name="lesion_prob")(logits)
    return keras.Model(inputs, outputs, name=f"resnet{config.depth}_unet_w{w:g}")


def float32_copy(model: keras.Model, config: UNetConfig) -> keras.Model:
    """The same network rebuilt under the float32 policy with the trained weights (serving runs float32)."""
    if keras.mixed_precision.global_policy().name == "float32":
        return model
    keras.mixed_precision.set_global_policy("float32")
    copy = build_resnet_unet(config)
    copy.set_weights([w.astype("float32") for w in model.get_weights()])
    return copy


def weight_arrays(model: keras.Model) -> dict[str, np.ndarray]:
    """The model's weights by position (``w0000``...) plus their layer paths (``names``), for a release file."""
    arrays = {f"w{i:04d}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    arrays["names"] = np.array([w.path for w in model.weights])
    return arrays


def set_weight_arrays(model: keras.Model, arrays: dict[str, np.ndarray], source: str) -> keras.Model:
    """Load ``weight_arrays`` output into a model built from the same config (float16 is widened)."""
    names = [str(n) for n in arrays.get("names", [])]
    expected = [w.path for w in model.weights]
    if names != expected:
        raise TrainingConfigError(
            f"{source} holds weights for {len(names)} tensors that do not match this UNet's {len(expected)} "
            f"(first difference: {next((a, b) for a, b in zip(names + [''], expected + ['']) if a != b)}); "
            "the release's unet settings must be the ones it was trained with"
        )
    model.set_weights([arrays[f"w{i:04d}"].astype(np.float32) for i in range(len(expected))])
    return model


def round_to_float16(model: keras.Model) -> keras.Model:
    """Round every weight through float16 in place, so figures are measured on what the release stores."""
    model.set_weights([np.asarray(w).astype(np.float16).astype(np.asarray(w).dtype) for w in model.get_weights()])
    return model
