"""The TensorFlow/Keras side of the course. Importing it never imports PyTorch."""
from .data import image_folder_loader
from .device import configure_gpus, describe_devices, get_device, get_strategy, resolve_precision, seed_everything
from .models import (
    TransferModel, available_models, classify_images, count_parameters, create_model, extract_features,
    feature_maps, freeze, predict_proba, to_tensor, train_mode, unfreeze,
)

FRAMEWORK = "tensorflow"

__all__ = [
    "FRAMEWORK", "image_folder_loader",
    "configure_gpus", "describe_devices", "get_device", "get_strategy", "resolve_precision", "seed_everything",
    "TransferModel", "available_models", "classify_images", "count_parameters", "create_model", "extract_features",
    "feature_maps", "freeze", "predict_proba", "to_tensor", "train_mode", "unfreeze",
]
