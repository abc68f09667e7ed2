"""Property-based tests (hypothesis) for the checks that stand between users' arrays and training: labels are never
silently changed, preprocessed images are never refused, raw pixels always are, and archive members never land
outside their folder."""
import io
import tarfile
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from transfer_course.data.download import extract
from transfer_course.models import MODEL_SPECS, check_preprocessed_images, preprocess
from transfer_course.training import class_indices

SPEC = MODEL_SPECS["torch"]["efficientnet_lite0"]
IMAGENET_SPEC = MODEL_SPECS["torch"]["resnet50"]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(hnp.arrays(st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8, np.float32, np.float64]),
                  hnp.array_shapes(max_dims=1, max_side=50), elements=st.integers(0, 100)))
def test_whole_non_negative_labels_pass_unchanged(y):
    out = class_indices(y)
    assert out.dtype == np.int64 and np.array_equal(out, y.astype(np.float64))


@FAST
@given(hnp.arrays(np.float64, st.integers(1, 40), elements=st.one_of(st.floats(-5, 50), st.sampled_from([np.nan, np.inf, -np.inf]))))
def test_labels_are_either_exact_or_refused(y):
    whole = np.isfinite(y).all() and np.all(np.mod(y, 1) == 0) and (y >= 0).all()
    if whole:
        assert np.array_equal(class_indices(y), y)
    else:
        with pytest.raises(ValueError):
            class_indices(y)


@FAST
@given(hnp.arrays(np.int64, hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=6), elements=st.integers(0, 3)))
def test_labels_with_more_than_one_axis_are_refused(y):
    with pytest.raises(ValueError, match="one-hot|1-D"):
        class_indices(y)


@FAST
@given(st.integers(1, 15), st.integers(8, 16), st.integers(0, 2 ** 31 - 1), st.sampled_from([SPEC, IMAGENET_SPEC]))
def test_preprocessed_images_are_never_refused(n, size, seed, spec):
    """Whatever the pixels (full-range noise, dark, bright, flat, low-contrast), preprocess's output for a few images
    passes the check (only batches of 16 or more are judged as 'pixels in 0..1', see check_preprocessed_images)."""
    rng = np.random.default_rng(seed)
    lo = int(rng.integers(0, 200))
    images = rng.integers(lo, int(rng.integers(lo + 1, 256)) + 1, size=(n, size, size, 3)).astype(np.uint8)
    x = preprocess(images, spec, size=size)
    check_preprocessed_images(x, spec)
    check_preprocessed_images(x.transpose(0, 3, 1, 2), spec, channels_first=True)


@FAST
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 3), st.integers(2, 9), st.integers(2, 9), st.just(3))))
def test_uint8_image_batches_are_always_refused(x):
    with pytest.raises(TypeError, match="raw uint8"):
        check_preprocessed_images(x, SPEC)


@FAST
@given(st.integers(1, 3), st.integers(4, 12), st.floats(30, 255))
def test_float_pixels_in_0_255_are_refused(n, size, top):
    x = np.random.default_rng(0).uniform(0, top, (n, size, size, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="raw pixels"):
        check_preprocessed_images(x, SPEC)


@FAST
@given(st.integers(1, 6), st.integers(1, 6))
def test_channel_axis_is_checked(channels, side):
    if channels == 3:
        return
    with pytest.raises(ValueError, match="not \\(N, H, W, 3\\)"):
        check_preprocessed_images(np.zeros((2, side, side, channels), np.float32), SPEC)


MEMBER = st.lists(st.sampled_from(["..", ".", "a", "b", "", "/", "etc", "~"]), min_size=1, max_size=5).map("/".join)


@pytest.mark.filterwarnings("ignore:Duplicate name")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(MEMBER, min_size=1, max_size=4), kind=st.sampled_from(["zip", "tar"]))
def test_archive_members_never_land_outside_their_folder(tmp_path_factory, names, kind):
    tmp = tmp_path_factory.mktemp("arch")
    archive = tmp / ("a.zip" if kind == "zip" else "a.tar")
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for i, name in enumerate(names):
                zf.writestr(name or f"f{i}", b"x")
    else:
        with tarfile.open(archive, "w") as tf:
            for i, name in enumerate(names):
                info = tarfile.TarInfo(name or f"f{i}")
                info.size = 1
                tf.addfile(info, io.BytesIO(b"x"))
    before = {p for p in tmp.parent.rglob("*")}
    try:
        dest = extract(archive, tmp / "out")
    except (ValueError, OSError, tarfile.TarError):
        dest = None  # refused: fine, as long as nothing was written outside
    after = {p for p in tmp.parent.rglob("*")}
    outside = [p for p in after - before if not (p == tmp / "out" or (tmp / "out") in p.parents)]
    assert not outside, f"extracting {names} wrote {outside}"
    if dest is not None:
        assert dest == tmp / "out"
