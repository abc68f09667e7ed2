"""The PyTorch side of the course. Importing it never imports TensorFlow."""
from .data import array_loader, augmentation, image_folder_loader
from .device import describe_devices, get_device, resolve_precision, seed_everything
from .models import (
    TransferModel, available_models, backbone_blocks, classify_images, count_parameters, create_model,
    extract_features, feature_maps, freeze, load_model, make_head, predict_proba, replace_head, save_model, to_tensor,
    train_mode, unfreeze,
)
from .train import cache_features, evaluate, fine_tune, fit, labels_of, predict
from .rl import (ActorCritic, PPOAgent, TRANSFER_MODES, freeze_torso, load_agent, new_heads, ppo_loss,
                 transfer_network)
from .distributed import all_reduce_mean, cleanup_distributed, launch, setup_distributed, world_info
from .adapt import (
    AdaptationNet, GradientReversal, adabn, coral_loss, embed, fit_adapted, grad_reverse, make_adaptation_net,
    make_domain_classifier,
)

from .text import (BagOfEmbeddings, TextClassifier, load_text_encoder, mean_pool, predict_texts,
                   sentence_embeddings, text_model, train_text_classifier)

FRAMEWORK = "torch"

__all__ = [
    "BagOfEmbeddings", "TextClassifier", "load_text_encoder", "mean_pool", "predict_texts", "sentence_embeddings",
    "text_model", "train_text_classifier",
    "FRAMEWORK", "array_loader", "augmentation", "image_folder_loader",
    "describe_devices", "get_device", "resolve_precision", "seed_everything",
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
