"""Checks for lesson 03, fine-tuning."""
from __future__ import annotations

import numpy as np

from ._base import (  # noqa: F401
    ExerciseFailed,
    check,
    expect,
    from_numpy,
    side,
    tensor_type,
    to_numpy,
    trainable_count,
)


# --- 03 fine-tuning ------------------------------------------------------------------------------------
@check("03_fine_tuning", "unfreeze_top_blocks")
def _unfreeze_top_blocks(fn, framework: str) -> str:
    T = side(framework)
    ours, theirs = T.create_model(num_classes=3), T.create_model(num_classes=3)
    for model in (ours, theirs):
        T.freeze(model.backbone)
    head_only = trainable_count(theirs, framework)
    T.unfreeze(ours.backbone, top=3)
    fn(theirs, 3)
    want, got = trainable_count(ours, framework), trainable_count(theirs, framework)
    expect(got != T.count_parameters(theirs)[0], "everything is trainable: unfreeze only the last n blocks; the others stay frozen.")
    expect(got != head_only, "no backbone parameter became trainable: unfreeze the layers of the *last* n blocks, blocks[-n:].")
    T.unfreeze(ours.backbone, top=3, train_bn=True)
    expect(got != trainable_count(ours, framework), "the BatchNorm layers of those blocks were unfrozen too; keep "
            "them frozen, so they keep their ImageNet statistics (skip them in the loop).")
    expect(got == want, f"{got:,d} parameters are trainable; unfreezing the last 3 blocks (BatchNorm frozen) gives {want:,d}.")
    return "Only the last blocks, the most ImageNet-specific ones, will adapt."


@check("03_fine_tuning", "learning_rate_groups")
def _learning_rate_groups(fn, framework: str) -> str:
    T = side(framework)
    model = T.create_model(num_classes=3)
    T.freeze(model.backbone)
    T.unfreeze(model.backbone, top=2)
    groups = fn(model, 1e-3, 1e-5)
    expect(isinstance(groups, (list, tuple)) and len(groups) == 2,
            "return two (parameters, learning rate) pairs: the backbone's and the head's.")
    if framework == "torch":
        backbone = [p for p in model.backbone.parameters() if p.requires_grad]
        head = list(model.head.parameters())
    else:
        backbone, head = model.backbone.trainable_weights, model.head.trainable_weights
    ids = lambda params: sorted(id(p) for p in params)
    (first, lr1), (second, lr2) = groups
    expect(ids(first) == ids(backbone) or ids(second) == ids(backbone),
            "one group must hold exactly the *trainable* parameters of model.backbone (frozen ones left out).")
    by_lr = {ids(first) == ids(backbone): lr1, ids(second) == ids(backbone): lr2}
    expect(by_lr.get(True) == 1e-5, "the pretrained (backbone) parameters get the small backbone_lr.")
    head_group, head_lr = (second, lr2) if ids(first) == ids(backbone) else (first, lr1)
    expect(ids(head_group) == ids(head), "the other group holds all the head's parameters.")
    expect(head_lr == 1e-3, "the new head gets the larger head_lr.")
    return "Pretrained layers move 100× more slowly than the new head."


@check("03_fine_tuning", "predict_image")
def _predict_image(fn, framework: str, model=None, image_size: int = 96) -> str:
    from ...models import preprocess

    T = side(framework)
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, size=(300, 451, 3), dtype=np.uint8), rng.integers(0, 256, size=(80, 60), dtype=np.uint8)]
    for image in images:
        got = fn(model, image.copy())
        expect(isinstance(got, (tuple, list)) and len(got) == 2 and isinstance(got[0], str),
                f"return a (class name, probability) pair; got {got!r}.")
        probs = T.predict_proba(model, preprocess(image, model.spec, size=image_size))[0]
        best = int(np.argmax(probs))
        expect(got[0] == model.class_names[best], f"expected class {model.class_names[best]!r}, got {got[0]!r}: "
                f"prepare the image exactly as in training, preprocess(image, model.spec, size={image_size}).")
        expect(abs(float(got[1]) - probs[best]) < 1e-3, f"the probability should be {probs[best]:.3f}; got {float(got[1]):.3f} "
                "(softmax of the model's scores).")
    return "Same preprocessing as in training, any image size, grayscale included."
