"""The torch-free reader of PyTorch state_dicts (used by the TensorFlow side for the shared ImageNet weights) reads
only inside the bytes a file holds, and a damaged file gets one clear error type. Files are crafted opcode by opcode,
so these tests need no torch."""
import struct
import zipfile

import numpy as np
import pytest

from transfer_course._torchfile import CheckpointFormatError, load_state_dict
from transfer_course.models import efficientnet_lite0_weights_path


def _str(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)


def _tuple(items) -> bytes:
    return b"(" + b"".join(items) + b"t"


def crafted_zip(path, offset, shape, stride, elements=6, storage="FloatStorage"):
    """A zip-layout state_dict {'w': tensor} whose tensor has the given offset/shape/stride over `elements` floats."""
    pid = _tuple([_str("storage"), f"ctorch\n{storage}\n".encode(), _str("0"), _str("cpu"), _int(elements)])
    pkl = (b"\x80\x02}" + _str("w") + b"ctorch._utils\n_rebuild_tensor_v2\n"
           + _tuple([pid + b"Q", _int(offset), _tuple(_int(n) for n in shape), _tuple(_int(s) for s in stride)])
           + b"Rs.")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/data/0", np.arange(elements, dtype=np.float32).tobytes())
    return path


def test_a_well_formed_crafted_file_reads_back(tmp_path):
    out = load_state_dict(crafted_zip(tmp_path / "ok.pt", offset=1, shape=(2, 2), stride=(2, 1)))
    np.testing.assert_array_equal(out["w"], [[1, 2], [3, 4]])
    out = load_state_dict(crafted_zip(tmp_path / "t.pt", offset=0, shape=(3, 2), stride=(1, 3)))  # a transposed view
    np.testing.assert_array_equal(out["w"], np.arange(6, dtype=np.float32).reshape(2, 3).T)


@pytest.mark.parametrize("offset, shape, stride, what", [
    (5, (2, 2), (2, 1), "reaches element"),      # starts inside, ends outside
    (0, (4, 4), (4, 1), "reaches element"),      # bigger than its storage
    (0, (2, 2), (1000, 1), "reaches element"),   # a huge stride
    (-1, (2,), (1,), "negative"),                # before the storage
    (0, (2,), (-1,), "negative"),                # walking backwards out of it
    (0, (2, 2), (1,), "inconsistent"),           # shape and stride of different lengths
    (9, (), (), "outside its storage"),          # a scalar past the end
])
def test_a_tensor_pointing_outside_its_storage_is_refused(tmp_path, offset, shape, stride, what):
    path = crafted_zip(tmp_path / "bad.pt", offset, shape, stride)
    with pytest.raises(CheckpointFormatError, match=what) as e:
        load_state_dict(path)
    assert "not a readable PyTorch state_dict" in str(e.value) and "torch.save" in str(e.value)


def test_a_missing_storage_or_an_unknown_type_is_refused(tmp_path):
    path = crafted_zip(tmp_path / "x.pt", 0, (2,), (1,))
    with zipfile.ZipFile(path) as zf:
        pkl = zf.read("archive/data.pkl")
    with zipfile.ZipFile(tmp_path / "nostorage.pt", "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
    with pytest.raises(CheckpointFormatError, match="no storage archive/data/0"):
        load_state_dict(tmp_path / "nostorage.pt")
    with pytest.raises(CheckpointFormatError, match="Unsupported tensor storage"):
        load_state_dict(crafted_zip(tmp_path / "odd.pt", 0, (2,), (1,), storage="ComplexStorage"))


def test_code_in_the_pickle_is_never_run(tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02cos\nsystem\n" + _tuple([_str("echo pwned > " + str(tmp_path / "p"))]) + b"R.")
    with pytest.raises(CheckpointFormatError, match="os.system"):
        load_state_dict(tmp_path / "evil.pt")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("keep", [0, 100, 0.5, 0.9999])
def test_a_truncated_download_gets_a_clear_error(tmp_path, keep):
    data = efficientnet_lite0_weights_path().read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    with pytest.raises(CheckpointFormatError, match="not a readable PyTorch state_dict.*Download it again"):
        load_state_dict(cut)


def test_a_missing_file_names_its_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_state_dict(tmp_path / "nowhere.pt")
