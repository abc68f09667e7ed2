import pytest


@pytest.fixture(scope="session")
def lite0():
    import transfer_course.torch as T

    return T.create_model()
