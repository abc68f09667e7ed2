import keras
import pytest
import tensorflow as tf

from transfer_course.tensorflow import configure_gpus, get_device, get_strategy, resolve_precision, seed_everything
from transfer_course.tensorflow.device import describe_devices

HAS_GPU = bool(tf.config.list_physical_devices("GPU"))
gpu = pytest.mark.skipif(not HAS_GPU, reason="needs a GPU")


def test_device_and_strategy_on_this_machine():
    gpus = configure_gpus()
    assert get_device() == ("/GPU:0" if gpus else "/CPU:0")
    strategy = get_strategy()
    expected = "MirroredStrategy" if len(gpus) > 1 else "OneDeviceStrategy"
    assert type(strategy).__name__ == expected and strategy.num_replicas_in_sync == max(1, len(gpus))


def test_precision_sets_the_keras_policy():
    assert resolve_precision("fp32").policy == "float32"
    p = resolve_precision("bf16")
    assert p.policy == "mixed_bfloat16" and keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    layer = keras.layers.Dense(4)
    assert layer(tf.zeros((1, 3))).dtype == tf.bfloat16 and layer.kernel.dtype == "float32"


@pytest.mark.skipif(HAS_GPU, reason="checks the message shown without a GPU")
def test_fp16_without_gpu_is_refused_not_ignored():
    with pytest.raises(ValueError, match="needs a GPU"):
        resolve_precision("fp16")
    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(ValueError, match="Valid choices: bf16, fp16, fp32"):
        resolve_precision("tf32")


def test_seed_everything_repeats():
    seed_everything(4)
    a = tf.random.normal((5,))
    seed_everything(4)
    assert bool(tf.reduce_all(a == tf.random.normal((5,))))


def test_describe_devices():
    info = describe_devices()
    assert info["version"] == tf.__version__ and info["keras"].startswith("3")


@gpu
def test_fp16_on_gpu():
    assert resolve_precision("fp16").policy == "mixed_float16"
    assert keras.layers.Dense(4)(tf.zeros((1, 3))).dtype == tf.float16
