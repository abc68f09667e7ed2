"""Helper run as a script by test_project.py: ImageNet logits from one framework, in its own process.

    python tests/predict_in_subprocess.py torch|tensorflow OUT.npz
"""
import sys

import numpy as np

from transfer_course.data import photo
from transfer_course.models import preprocess

framework, out = sys.argv[1], sys.argv[2]
if framework == "torch":
    import torch

    import transfer_course.torch as T

    model = T.create_model().eval()

    def logits(x):
        with torch.inference_mode():
            return model(T.to_tensor(x)).numpy()
else:
    import transfer_course.tensorflow as T

    model = T.create_model()

    def logits(x):
        return np.asarray(model(T.to_tensor(x), training=False))

x = preprocess([photo("cat"), photo("coffee")], model.spec)
noise = np.random.default_rng(0).uniform(-1, 1, size=(1, 160, 200, 3)).astype(np.float32)  # odd size: tests "same" padding
np.savez(out, photos=logits(x), noise=logits(noise), features=T.extract_features(model, x),
         total=np.array(T.count_parameters(model)))
