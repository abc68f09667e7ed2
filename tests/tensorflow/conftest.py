import pytest


@pytest.fixture(scope="session")
def lite0():
    import transfer_course.tensorflow as T

    return T.create_model()


@pytest.fixture(autouse=True)
def float32_policy():
    """Tests that change Keras' global dtype policy must not leak it into other tests."""
    import keras

    yield
    keras.mixed_precision.set_global_policy("float32")
