"""Checks for lesson 03, fine-tuning."""
from __future__ import annotations

import numpy as np

from ._base import (
    check,
    expect,
    side,
    to_numpy,
    trainable_count,
)


def _is_batchnorm(layer, framework: str) -> bool:
    if framework == "torch":
        import torch

        return isinstance(layer, torch.nn.modules.batchnorm._BatchNorm)
    import keras

    return isinstance(layer, keras.layers.BatchNormalization)


def _own_size(layer, framework: str) -> int:
    """Parameters of ``layer`` itself (PyTorch) or its weights (Keras), BatchNorm statistics not counted."""
    if framework == "torch":
        return sum(p.numel() for p in layer.parameters(recurse=False))
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights or layer.weights
               if not any(w is s for s in (getattr(layer, "moving_mean", None), getattr(layer, "moving_variance", None))))


def _blocks_size(blocks, framework: str) -> int:
    """Parameters that unfreezing ``blocks`` with BatchNorm kept frozen makes trainable."""
    return sum(_own_size(layer, framework) for _, group in blocks for layer in group if not _is_batchnorm(layer, framework))


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
    if framework != "torch":
        expect(theirs.backbone.trainable, "model.backbone.trainable is still False: while the backbone itself is frozen, "
                "Keras ignores the trainable setting of its layers. Set model.backbone.trainable = True first.")
    expect(got != head_only, "no backbone parameter became trainable: unfreeze the layers of the *last* n blocks, blocks[-n:].")
    blocks = T.backbone_blocks(theirs.backbone)
    expect(got != head_only + _blocks_size(blocks[:3], framework), "you unfroze the *first* n blocks, the ones next to the "
            "input; their edge and texture detectors suit any image. Unfreeze the last n, blocks[-n:].")
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
    expect(isinstance(groups, (list, tuple)) and len(groups) == 2 and all(len(g) == 2 for g in groups),
            "return two (parameters, learning rate) pairs: the backbone's and the head's.")
    expect(all(isinstance(params, (list, tuple)) for params, _ in groups),
            "a group's parameters must be a list: a generator such as model.parameters() can be read only once, so "
            "the optimizer would take them all and any later use (counting them, a second optimizer) sees none. "
            "Wrap it in list(...).")
    if framework == "torch":
        backbone = [p for p in model.backbone.parameters() if p.requires_grad]
        every_backbone = list(model.backbone.parameters())
        head = list(model.head.parameters())
    else:
        backbone, head = model.backbone.trainable_weights, model.head.trainable_weights
        every_backbone = model.backbone.weights
    ids = lambda params: sorted(id(p) for p in params)
    (first, lr1), (second, lr2) = groups
    expect(not set(ids(first)) & set(ids(second)), "a parameter appears in both groups: the optimizer must see each "
            "parameter once (PyTorch refuses such groups). One group is model.backbone's, the other model.head's.")
    expect(ids(every_backbone) not in (ids(first), ids(second)),
            "the backbone group holds *all* the backbone's parameters, frozen ones included: keep only the trainable "
            "ones (requires_grad in PyTorch, trainable_weights in Keras), or the frozen blocks get weight decay and updates.")
    expect(ids(first) == ids(backbone) or ids(second) == ids(backbone),
            "one group must hold exactly the *trainable* parameters of model.backbone (frozen ones left out).")
    backbone_lr = lr1 if ids(first) == ids(backbone) else lr2
    head_group, head_lr = (second, lr2) if ids(first) == ids(backbone) else (first, lr1)
    expect(not (backbone_lr == 1e-3 and head_lr == 1e-5), "the learning rates are swapped: the pretrained backbone "
            "gets the small backbone_lr, the new head the larger head_lr.")
    expect(backbone_lr == 1e-5, "the pretrained (backbone) parameters get the small backbone_lr.")
    expect(ids(head_group) == ids(head), "the other group holds all the head's parameters.")
    expect(head_lr == 1e-3, "the new head gets the larger head_lr.")
    if framework == "torch":  # the groups must build the optimizer the lesson uses
        import torch

        torch.optim.AdamW([{"params": params, "lr": lr} for params, lr in groups])
    return "Pretrained layers move 100× more slowly than the new head."


@check("03_fine_tuning", "predict_image")
def _predict_image(fn, framework: str, model=None, image_size: int = 96) -> str:
    from ...models import preprocess

    T = side(framework)
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, size=(300, 451, 3), dtype=np.uint8), rng.integers(0, 256, size=(80, 60), dtype=np.uint8)]
    for image in images:
        if framework == "torch":
            import copy

            saved = copy.deepcopy(model.state_dict())  # a forward pass in training mode would move BatchNorm statistics
            model.train()  # as after a training loop: the answer must switch to inference mode itself
            try:
                got = fn(model, image.copy())
            finally:
                still_training = model.training
                model.load_state_dict(saved)
                model.eval()
        else:
            got = fn(model, image.copy())
        if framework == "torch":
            expect(not still_training, "the model is still in training mode, so dropout changes every answer: call "
                    "model.eval() before predicting (torch.no_grad() alone does not switch dropout off).")
        expect(isinstance(got, (tuple, list)) and len(got) == 2 and isinstance(got[0], str),
                f"return a (class name, probability) pair; got {got!r}.")
        x = preprocess(image, model.spec, size=image_size)
        probs = T.predict_proba(model, x)[0]
        best = int(np.argmax(probs))
        expect(got[0] == model.class_names[best], f"expected class {model.class_names[best]!r}, got {got[0]!r}: "
                f"prepare the image exactly as in training, preprocess(image, model.spec, size={image_size}).")
        if abs(float(got[1]) - probs[best]) >= 1e-3:
            scores = to_numpy(model(T.to_tensor(x)) if framework == "torch" else model(x, training=False))[0]
            expect(abs(float(got[1]) - float(scores.max())) >= 1e-3, f"{float(got[1]):.3f} is the model's raw score "
                    "(a logit), not a probability: apply the softmax to the scores first.")
        expect(abs(float(got[1]) - probs[best]) < 1e-3, f"the probability should be {probs[best]:.3f}; got {float(got[1]):.3f} "
                "(softmax of the model's scores).")
    return "Same preprocessing as in training, inference mode, any image size, grayscale included."
