"""Joint image + mask augmentation for the segmenter, as TensorFlow ops inside ``tf.data`` (TensorFlow only).

Geometry (any rotation, flips, scale, independent x/y stretch as the served 256x256 squash does, shift)
moves image and mask together; colour (brightness, contrast, saturation, hue, gamma) and the seed's
brightness/contrast idea touch the image only.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from preprocess.contract import SEG_SIZE

ROTATION = math.pi  # any angle: dermoscopy has no up
SCALE = (0.8, 1.25)
STRETCH = 0.15  # extra per-axis scale spread
SHIFT = 0.08  # fraction of the side


def _affine(tf: Any, size: int) -> Any:
    """A random output->input projective transform (8 floats) about the image centre."""
    angle = tf.random.uniform([], -ROTATION, ROTATION)
    scale = tf.exp(tf.random.uniform([], math.log(SCALE[0]), math.log(SCALE[1])))
    stretch = tf.exp(tf.random.uniform([], -STRETCH, STRETCH))
    sx, sy = scale * stretch, scale / stretch
    flip = tf.where(tf.random.uniform([]) < 0.5, -1.0, 1.0)
    cos, sin = tf.cos(angle), tf.sin(angle)
    a0, a1 = flip * cos / sx, sin / sx
    b0, b1 = -flip * sin / sy, cos / sy
    c = (size - 1) / 2.0
    tx, ty = tf.random.uniform([], -SHIFT, SHIFT) * size, tf.random.uniform([], -SHIFT, SHIFT) * size
    return tf.stack([a0, a1, c - a0 * c - a1 * c + tx, b0, b1, c - b0 * c - b1 * c + ty, 0.0, 0.0])


def _colour(tf, x):
    x = tf.image.random_hue(x, 0.03)
    x = tf.image.random_saturation(x, 0.75, 1.3)
    x = tf.image.random_contrast(x, 0.8, 1.25)
    x = tf.image.random_brightness(x, 0.1)
    x = tf.clip_by_value(x, 0.0, 1.0)
    return x ** tf.exp(tf.random.uniform([], -0.25, 0.25))


def augment_fn(strong: bool, brightness: bool) -> Callable[[Any, Any], tuple[Any, Any]]:
    """``(uint8 image, uint8 0/1 mask) -> (float image in [0, 1], float mask (H, W, 1))`` for ``tf.data.map``.

    ``strong`` False keeps flips and quarter turns only (the earlier recipe); ``brightness`` adds
    the seed project's per-image gain and shift on top.
    """
    import tensorflow as tf

    def augment(x, y):
        x = tf.cast(x, tf.float32) * (1.0 / 255.0)
        y = tf.cast(y, tf.float32)[..., None]
        both = tf.concat([x, y], axis=-1)
        both = tf.image.random_flip_left_right(both)
        both = tf.image.random_flip_up_down(both)
        both = tf.image.rot90(both, tf.random.uniform([], 0, 4, dtype=tf.int32))
        if strong:
            both = tf.raw_ops.ImageProjectiveTransformV3(
                images=both[None], transforms=_affine(tf, SEG_SIZE)[None], output_shape=[SEG_SIZE, SEG_SIZE],
                interpolation="BILINEAR", fill_mode="REFLECT", fill_value=0.0,
            )[0]
        x, y = both[..., :3], tf.cast(both[..., 3:] >= 0.5, tf.float32)
        if strong:
            x = _colour(tf, x)
        if brightness:
            x = x * tf.random.uniform([], 0.7, 1.3) + tf.random.uniform([], -0.08, 0.08)
            x = tf.clip_by_value(x, 0.0, 1.0)
        return tf.ensure_shape(x, (SEG_SIZE, SEG_SIZE, 3)), tf.ensure_shape(y, (SEG_SIZE, SEG_SIZE, 1))

    return augment
