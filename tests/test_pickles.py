"""dmc.pickles: numpy values in users' pickles are rebuilt only from checked state; plain data loads as numpy's own
unpickling loads it. The crafted files that crash numpy itself are run in child processes by the readers' tests
(tests/bench, tests/datasets, tests/detection); here every refusal is checked before numpy could read anything."""

import io
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from dmc.pickles import DataArray, DataUnpickler, RefusedNumpyState, torch_safe_globals

PLAIN = {"floats": np.arange(6.0).reshape(2, 3), "fortran": np.asfortranarray(np.arange(6).reshape(2, 3)),
         "big_endian": np.arange(3, dtype=">f8"), "bytes": np.array([b"ab", b"c"]), "str": np.array(["xy", "z"]),
         "bools": np.array([True, False]), "zero_d": np.array(2.5), "empty": np.zeros((0, 3)),
         "float32": np.float32(1.5), "str_scalar": np.str_("ab"), "complex": np.complex128(1 + 2j),
         "half": np.float16(3)}


def _load(payload: bytes, **kwargs):
    return DataUnpickler(io.BytesIO(payload), **kwargs).load()


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_plain_numpy_values_load_as_numpy_loads_them(protocol):
    payload = pickle.dumps(PLAIN, protocol=protocol)
    ours, numpys = _load(payload), pickle.loads(payload)
    for key, expected in numpys.items():
        got = ours[key]
        assert np.array_equal(got, expected) and np.asarray(got).dtype == np.asarray(expected).dtype, key
        if isinstance(expected, np.ndarray):
            assert isinstance(got, DataArray) and got.flags.f_contiguous == expected.flags.f_contiguous, key
            assert type(np.asarray(got)) is np.ndarray and type(pickle.loads(pickle.dumps(got))) is np.ndarray
        else:
            assert type(got) is type(expected), key


def test_a_dtype_is_rebuilt_from_its_name_not_from_the_flags_its_state_claims():
    claims_objects = _dtype("f8", (3, "<", None, None, None, -1, -1, 63))  # numpy's own setstate would take them
    out = _load(pickle.dumps(_array((1, (2,), claims_objects, False, b"\0" * 16)), protocol=2))
    assert out.dtype == F8 and not out.dtype.hasobject and np.array_equal(out, [0.0, 0.0])


def test_python2_pickles_read_with_bytes_encoding():
    """CIFAR's batches were written by Python 2: read with encoding="bytes", a dtype's name comes back as bytes."""
    out = _load(pickle.dumps(PLAIN, protocol=2), encoding="bytes")
    assert np.array_equal(out["str"], PLAIN["str"]) and out["float32"] == 1.5


class _Reduced:
    def __init__(self, *reduced):
        self.reduced = reduced

    def __reduce__(self):
        return self.reduced


_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_SCALAR = np.float64(0).__reduce__()[0]


def _array(state) -> _Reduced:
    return _Reduced(_RECONSTRUCT, (np.ndarray, (0,), b"b"), state)


def _dtype(name: str, state: tuple) -> _Reduced:
    return _Reduced(np.dtype, (name, False, True), state)


F8 = np.dtype("f8")
PLAIN_F8_STATE = (3, "<", None, None, None, -1, -1, 0)
HOSTILE = {
    "object array from a short list": (_array((1, (1000,), np.dtype("O"), False, [1])), "'O8' is not plain data"),
    "float64 declaring it holds objects": (_array((1, (2,), _dtype("f8", (3, "<", None, None, None, -1, -1, 63)),
                                                   False, [1.0, 2.0])), "numpy array data is not raw bytes"),
    "record with an object field": (_array((1, (2,), _dtype("V8", (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)},
                                                                   8, 1, 63)), False, b"\0" * 16)),
                                    "'V8' is not plain data"),
    "fields on a plain name": (_array((1, (2,), _dtype("f8", (3, "<", None, ("a",), {"a": (F8, 0)}, -1, -1, 0)),
                                       False, b"\0" * 16)), "its state is not a plain dtype's"),
    "item size it cannot have": (_array((1, (2,), _dtype("S1", (3, "|", None, None, None, 4096, 1, 0)),
                                         False, b"\0" * 2)), "its state is not a plain dtype's"),
    "fewer bytes than the shape": (_array((1, (1000,), F8, False, b"\0" * 8)), "needs 8000 bytes, the pickle holds 8"),
    "more bytes than the shape": (_array((1, (1,), F8, False, b"\0" * 16)), "needs 8 bytes, the pickle holds 16"),
    "shape of 2**126 elements": (_array((1, (2**63, 2**63), F8, False, b"")), "the pickle holds 0"),
    "negative shape": (_array((1, (-1,), F8, False, b"")), "is not a shape"),
    "unknown state version": (_array((2, (1,), F8, False, b"\0" * 8)), "is not an array's"),
    "object scalar": (_Reduced(_SCALAR, (np.dtype("O"), [1])), "'O8' is not plain data"),
    "scalar of too few bytes": (_Reduced(_SCALAR, (_dtype("f8", PLAIN_F8_STATE), b"\0")), "needs 8 bytes"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_numpy_state_that_is_not_plain_data_is_refused(case):
    value, problem = HOSTILE[case]
    with pytest.raises(RefusedNumpyState, match=problem):
        _load(pickle.dumps({"x": value}, protocol=2))


def test_a_refused_array_is_refused_before_numpy_reads_it():
    """Numpy's own unpickling of the first case ends the interpreter: the refusal is what keeps it alive."""
    crash = subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
                           input=pickle.dumps(HOSTILE["object array from a short list"][0], protocol=2),
                           capture_output=True)
    assert crash.returncode < 0  # killed by a signal


def test_torch_weights_only_loads_rebuild_numpy_values_the_same_way(tmp_path, hostile_array):
    path = tmp_path / "plain.pt"
    torch.save({"weights": torch.ones(2), "meta": PLAIN}, path)
    with torch.serialization.safe_globals(torch_safe_globals()):
        loaded = torch.load(path, weights_only=True)
    assert all(np.array_equal(loaded["meta"][k], v) for k, v in PLAIN.items())
    torch.save({"meta": hostile_array}, path)
    with pytest.raises(pickle.UnpicklingError, match="'O8' is not plain data"), \
            torch.serialization.safe_globals(torch_safe_globals()):
        torch.load(path, weights_only=True)
    assert not set(torch.serialization.get_safe_globals()) & set(torch_safe_globals())  # scoped to the load
