"""Loading a saved model or a checkpoint never runs code from the file, and a bad file gets a clear error."""
import pytest
import torch
from torch import nn

import transfer_course.torch as T


class _Payload:
    """Unpickling this object would create a file: the proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def malicious(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "downloaded.pt"
    torch.save({"format": "transfer-course model 1", "spec": "efficientnet_lite0", "head": _Payload(marker)}, path)
    return path, marker


def test_load_model_refuses_a_file_that_would_run_code(malicious):
    path, marker = malicious
    with pytest.raises(ValueError, match="refused"):
        T.load_model(path)
    assert not marker.exists(), "code from the file ran"


def test_fit_refuses_a_checkpoint_that_would_run_code(malicious):
    path, marker = malicious
    model = nn.Sequential(nn.Linear(4, 2))
    x, y = torch.randn(8, 4).numpy(), torch.tensor([0, 1] * 4).numpy()
    with pytest.raises(ValueError, match="refused"):
        T.fit(model, (x, y), epochs=1, checkpoint=path, progress=False)
    assert not marker.exists(), "code from the file ran"


@pytest.mark.parametrize("content,message", [(b"", "empty"), (b"PK\x03\x04 not really a zip", "truncated or not a PyTorch file")])
def test_broken_files_get_clear_errors(tmp_path, content, message):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        T.load_model(path)


def test_folder_and_missing_paths(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        T.load_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="save_model"):
        T.load_model(tmp_path / "nothing.pt")
    with pytest.raises(ValueError, match="not a model saved by"):
        torch.save({"w": torch.zeros(2)}, tmp_path / "plain.pt")
        T.load_model(tmp_path / "plain.pt")


def test_save_and_load_round_trip_through_plain_data(tmp_path):
    model = T.create_model(num_classes=3, class_names=["a", "b", "c"])
    path = T.save_model(model, tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)  # the file is tensors and plain data only
    assert [layer["type"] for layer in raw["head"]] == [type(m).__name__ for m in model.head]
    again = T.load_model(path)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), again(x), atol=1e-6)
    assert again.class_names == ("a", "b", "c")


def test_a_head_that_cannot_be_described_as_data_is_refused_with_the_fix(tmp_path):
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(1280, 3)

        def forward(self, x):
            return self.fc(x)

    model = T.replace_head(T.create_model(), head=Custom())
    with pytest.raises(TypeError, match="torch.save\\(model.state_dict\\(\\), path\\)"):
        T.save_model(model, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_checkpoints_resume_with_safe_loading(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x, y = torch.randn(16, 4).numpy(), torch.tensor([0, 1] * 8).numpy()
    ckpt = tmp_path / "run.pt"
    T.fit(model, (x, y), epochs=2, checkpoint=ckpt, progress=False)
    state = torch.load(ckpt, weights_only=True)  # loads without allowing any code
    assert state["epoch"] == 2 and state["rng"]["numpy"]["keys"].shape == (624,)
    history = T.fit(model, (x, y), epochs=3, checkpoint=ckpt, progress=False)
    assert len(history) == 3
