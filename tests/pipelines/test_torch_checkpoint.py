"""The restricted reader of legacy torch checkpoints: tensors come back exactly (strides, offsets, views,
dtypes), and anything but a plain state dict, or a file that lies about its sizes, is one DataError."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
from legacy_checkpoints import Global, Reduce, Storage, Strided, checkpoint_bytes, dump, header_bytes, write_checkpoint

from sensorium.pipelines.datasets.torch_checkpoint import read_state_dict
from sensorium.runtime.errors import DataError


def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_tensors_come_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    conv = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    shared = Storage(np.arange(20, dtype=np.float32))
    tensors = {
        "conv.weight": conv,
        # the conv stored channels-last, as the real checkpoints do: (4, 3, 3, 3) with strides (27, 1, 9, 3)
        "nhwc.weight": Strided(Storage(np.ascontiguousarray(conv.transpose(0, 2, 3, 1)).reshape(-1)), 0,
                               (4, 3, 3, 3), (27, 1, 9, 3)),
        "transposed": Strided(shared, 0, (4, 5), (1, 4)),  # non-contiguous: the transpose of a (5, 4) block
        "offset": Strided(shared, 7, (3,), (2,)),  # offset and stride into the same storage
        "bn.num_batches_tracked": np.asarray(12, dtype=np.int64),  # a 0-d tensor
        "half": rng.normal(size=(2, 2)).astype(np.float16),
        "mask": np.asarray([True, False, True]),
        "empty": np.zeros((0, 3), np.float32),
    }
    state = read_state_dict(write_checkpoint(tmp_path / "model.pth", tensors))
    assert list(state) == list(tensors)
    np.testing.assert_array_equal(state["conv.weight"], conv)
    np.testing.assert_array_equal(state["nhwc.weight"], conv)
    np.testing.assert_array_equal(state["transposed"], np.arange(20, dtype=np.float32).reshape(5, 4).T)
    np.testing.assert_array_equal(state["offset"], [7.0, 9.0, 11.0])
    assert state["bn.num_batches_tracked"].shape == () and state["bn.num_batches_tracked"] == 12
    assert state["half"].dtype == np.float16 and state["mask"].dtype == bool and state["empty"].shape == (0, 3)
    assert all(a.flags.c_contiguous and a.flags.writeable for a in state.values())  # copies, not views of the file


def test_storage_views_are_honoured():
    base = np.arange(10, dtype=np.float32)
    view = Storage(base, key="root", view=("view1", 4, 6))
    state = read_state_dict(checkpoint_bytes({"v": Strided(view, 1, (2, 2), (2, 1))}))
    np.testing.assert_array_equal(state["v"], [[5, 6], [7, 8]])


@pytest.mark.parametrize("extra, refused", [
    ({"x": Global("os", "system")}, "os.system"),
    ({"x": Reduce(Global("os", "system"), ("echo owned",))}, "os.system"),
    ({"x": Reduce(Global("builtins", "eval"), ("1",))}, "builtins.eval"),
    ({"x": Global("torch.nn.modules.conv", "Conv2d")}, "torch.nn.modules.conv.Conv2d"),
])
def test_globals_outside_the_allow_list_are_refused_by_name(extra, refused):
    data = checkpoint_bytes({"w": np.ones(3, np.float32)}, extra=extra)
    with pytest.raises(DataError, match=f"refusing the global {refused}") as exc:
        read_state_dict(data, label="evil.pth")
    assert _one_line(exc).startswith("evil.pth: ")


def test_the_header_pickles_allow_no_globals_either():
    data = dump(Reduce(Global("posix", "system"), ("echo owned",))) + checkpoint_bytes({})
    with pytest.raises(DataError, match="refusing the global posix.system in the checkpoint's magic number"):
        read_state_dict(data)
    with pytest.raises(DataError, match="wrong magic number"):
        read_state_dict(checkpoint_bytes({}, magic=0))


def test_magic_protocol_and_format_are_checked(tmp_path):
    with pytest.raises(DataError, match="unsupported torch checkpoint protocol 1002"):
        read_state_dict(checkpoint_bytes({"w": np.ones(2, np.float32)}, protocol=1002))
    zipped = tmp_path / "new.pth"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("archive/data.pkl", b"")
    with pytest.raises(DataError, match="zip-format .* only the legacy format"):
        read_state_dict(zipped)
    with pytest.raises(DataError, match="not a readable legacy torch checkpoint"):
        read_state_dict(b"\x80\x02garbage")
    with pytest.raises(DataError, match="cannot read the checkpoint"):
        read_state_dict(tmp_path / "missing.pth")


def test_truncated_files_are_one_error():
    data = checkpoint_bytes({"a": np.ones((8, 8), np.float32), "b": np.ones(4, np.float32)})
    for cut in (len(data) - 3, len(data) - 300, 60, 250):
        with pytest.raises(DataError) as exc:
            read_state_dict(data[:cut], label="cut.pth")
        assert _one_line(exc).startswith("cut.pth: ")
    with pytest.raises(DataError, match="unexpected bytes after the last storage"):
        read_state_dict(data + b"\0" * 8)


def test_lying_sizes_never_allocate():
    """A storage that claims a terabyte, counts that disagree, a tensor reaching past its storage or with
    more elements than its storage holds: one DataError each, before any large allocation."""
    def storage(numel=None):
        return Storage(np.ones(4, np.float32), key="s", numel=numel)

    with pytest.raises(DataError, match="storage s holds 4 elements, its tensors say 1099511627776"):
        read_state_dict(checkpoint_bytes({"w": Strided(storage(2**40), 0, (4,), (1,))}))
    with pytest.raises(DataError, match=r"truncated checkpoint \(storage s needs 4,398,046,511,104 bytes"):
        read_state_dict(checkpoint_bytes({"w": Strided(storage(2**40), 0, (4,), (1,))}, counts={"s": 2**40}))
    with pytest.raises(DataError, match="storage s holds 5 elements, its tensors say 4"):
        read_state_dict(checkpoint_bytes({"w": Strided(storage(), 0, (4,), (1,))}, counts={"s": 5}))
    with pytest.raises(DataError, match=r"tensor w \(3, 2\) with strides \(2, 1\) at offset 0 reaches past"):
        read_state_dict(checkpoint_bytes({"w": Strided(storage(), 0, (3, 2), (2, 1))}))
    with pytest.raises(DataError, match=r"tensor w has 1,000,000 elements in a storage of 4"):
        read_state_dict(checkpoint_bytes({"w": Strided(storage(), 0, (1000, 1000), (0, 0))}))
    with pytest.raises(DataError, match="storage key list does not match"):
        read_state_dict(checkpoint_bytes({"w": Strided(storage(), 0, (4,), (1,))}, keys=[]))


def test_the_state_dict_must_map_names_to_tensors():
    with pytest.raises(DataError, match="holds no state dict"):
        read_state_dict(header_bytes() + dump(["not", "a", "dict"]) + dump([]))
    with pytest.raises(DataError, match="holds no state dict"):
        read_state_dict(checkpoint_bytes({}, extra={"x": 3}))
    # storages belong in the state dict only: even the allowed storage types are refused before it
    with pytest.raises(DataError, match="refusing the global torch.FloatStorage in the checkpoint's magic number"):
        read_state_dict(dump(Storage(np.ones(1, np.float32), key="k")) + checkpoint_bytes({}))
