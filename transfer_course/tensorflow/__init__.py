"""The TensorFlow/Keras side of the course. Importing it never imports PyTorch."""
import os

# Keras 3 can run on several backends; this side of the course is TensorFlow's. Quieten TensorFlow's
# C++ start-up chatter unless the user asked for it.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ._quiet import quiet_start_up  # noqa: E402

with quiet_start_up():  # TensorFlow's C++ start-up notes stay out of the notebook; anything else is shown
    import keras  # noqa: E402
    import tensorflow  # noqa: E402, F401

if keras.backend.backend() != "tensorflow":
    raise ImportError(f"transfer_course.tensorflow needs Keras' TensorFlow backend, but KERAS_BACKEND={keras.backend.backend()!r}. "
                      "Unset KERAS_BACKEND or set it to 'tensorflow' before importing Keras.")

from .data import array_loader, augmentation, image_folder_loader  # noqa: E402
from .device import configure_gpus, describe_devices, get_device, get_strategy, resolve_precision, seed_everything
from .models import (  # noqa: E402
    TransferModel, available_models, backbone_blocks, classify_images, count_parameters, create_model,
    extract_features, feature_maps, freeze, load_model, make_head, predict_proba, replace_head, save_model, to_tensor,
    train_mode, unfreeze,
)
from .train import cache_features, evaluate, fine_tune, fit, labels_of, predict  # noqa: E402
from .rl import (ActorCritic, PPOAgent, TRANSFER_MODES, freeze_torso, load_agent, new_heads, ppo_loss,  # noqa: E402
                 transfer_network)
from .distributed import all_reduce_mean, cleanup_distributed, launch, setup_distributed, world_info  # noqa: E402
from .adapt import (  # noqa: E402
    AdaptationNet, GradientReversal, adabn, coral_loss, embed, fit_adapted, grad_reverse, make_adaptation_net,
    make_domain_classifier,
)

from .text import (BagOfEmbeddings, TextClassifier, load_text_encoder, mean_pool, predict_texts,  # noqa: E402
                   sentence_embeddings, text_model, train_text_classifier)

FRAMEWORK = "tensorflow"

__all__ = [
    "BagOfEmbeddings", "TextClassifier", "load_text_encoder", "mean_pool", "predict_texts", "sentence_embeddings",
    "text_model", "train_text_classifier",
    "FRAMEWORK", "array_loader", "augmentation", "image_folder_loader",
    "configure_gpus", "describe_devices", "get_device", "get_strategy", "resolve_precision", "seed_everything",
    "TransferModel", "available_models", "backbone_blocks", "classify_images", "count_parameters", "create_model",
    "extract_features", "feature_maps", "freeze", "load_model", "make_head", "predict_proba", "replace_head",
    "save_model", "to_tensor", "train_mode", "unfreeze",
    "cache_features", "evaluate", "fine_tune", "fit", "labels_of", "predict",
    "ActorCritic", "PPOAgent", "TRANSFER_MODES", "freeze_torso", "load_agent", "new_heads", "ppo_loss",
    "transfer_network",
    "AdaptationNet", "GradientReversal", "adabn", "coral_loss", "embed", "fit_adapted", "grad_reverse",
    "make_adaptation_net", "make_domain_classifier",
    "all_reduce_mean", "cleanup_distributed", "launch", "setup_distributed", "world_info",
]
