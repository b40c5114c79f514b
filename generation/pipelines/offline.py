"""Workers never reach a model hub: the hub's offline switches, on for good.

``huggingface_hub`` reads ``HF_HUB_OFFLINE`` once, when it is first imported, and diffusers copies the value into
its own modules (``from huggingface_hub.constants import HF_HUB_OFFLINE``). Setting the environment variable
later, or with ``setdefault`` after someone set it to 0, changes nothing. ``force_offline`` sets the environment
*and* every already-imported copy of the constants, so it works whatever was imported first; the package calls
it on import and again before each load.
"""

from __future__ import annotations

import os
import sys

ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DIFFUSERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
}
# module-level booleans that mean "offline" / "no telemetry" in the hub libraries and their copies
_FLAGS = ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "HF_HUB_DISABLE_IMPLICIT_TOKEN")
_PACKAGES = ("huggingface_hub", "transformers", "diffusers", "peft", "accelerate", "open_clip", "timm")


def force_offline() -> list[str]:
    """Set the offline environment and flip the flags in imported modules; returns the module.flag names flipped."""
    os.environ.update(ENV)
    flipped = []
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".", 1)[0] not in _PACKAGES:
            continue
        for flag in _FLAGS:
            if getattr(module, flag, None) is False:
                setattr(module, flag, True)
                flipped.append(f"{name}.{flag}")
    return flipped


def is_offline() -> bool:
    """True when the environment says offline and every imported copy of the hub's switch agrees."""
    if any(os.environ.get(k) != v for k, v in ENV.items()):
        return False
    return not any(
        getattr(module, "HF_HUB_OFFLINE", True) is False
        for name, module in list(sys.modules.items())
        if module is not None and name.split(".", 1)[0] in _PACKAGES
    )
