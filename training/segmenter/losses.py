"""BCE + soft Dice loss and a Dice metric, registered so a saved ``.keras`` reloads with them."""
from __future__ import annotations

import keras
from keras import ops

SMOOTH = 1.0


@keras.saving.register_keras_serializable(package="dermassist")
def dice_coefficient(y_true, y_pred):
    """Soft Dice over the batch (per image, then averaged)."""
    y_true = ops.cast(y_true, y_pred.dtype)
    inter = ops.sum(y_true * y_pred, axis=(1, 2, 3))
    total = ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3))
    return ops.mean((2.0 * inter + SMOOTH) / (total + SMOOTH))


@keras.saving.register_keras_serializable(package="dermassist")
def bce_dice_loss(y_true, y_pred):
    """Binary cross entropy plus (1 - soft Dice)."""
    y_true = ops.cast(y_true, y_pred.dtype)
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
    return bce + 1.0 - dice_coefficient(y_true, y_pred)


CUSTOM_OBJECTS = {"bce_dice_loss": bce_dice_loss, "dice_coefficient": dice_coefficient}
