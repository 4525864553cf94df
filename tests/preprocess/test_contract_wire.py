"""The contract's wire datatypes are tritonclient's names of its numpy dtypes."""
from __future__ import annotations

import numpy as np
from tritonclient.utils import np_to_triton_dtype

from preprocess.contract import IMAGE, IMAGE_WIRE_DATATYPE, NUMPY_DTYPES, WIRE_DATATYPES


def test_each_config_dtype_has_tritonclients_wire_name() -> None:
    assert set(WIRE_DATATYPES) == set(NUMPY_DTYPES)
    for config, numpy_name in NUMPY_DTYPES.items():
        assert WIRE_DATATYPES[config] == np_to_triton_dtype(np.dtype(numpy_name)), config
    assert IMAGE_WIRE_DATATYPE == WIRE_DATATYPES[IMAGE.dtype] == "BYTES"
