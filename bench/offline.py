"""Imported first by every benchmark: nothing may download. Sets the Hugging Face offline
variables (unless the caller set them) before `transformers`, `datasets` or TRL is imported."""
import os

VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")
for name in VARIABLES:
    os.environ.setdefault(name, "1")
