"""Frozen CLIP through open_clip (the only fma module importing open_clip).

``load_clip`` builds the model; ``CLIPImageEncoder`` exposes what Softmax-GradCAM needs from the
image tower; ``TextEncoder`` and ``PromptLearner`` implement CoOp prompts on the text tower.
"""

import fma  # noqa: F401  (installs the torchvision compatibility hooks before open_clip)
from fma.clip.backbone import CLIPImageEncoder, VisualFeatures, load_clip
from fma.clip.prompt_learner import PromptLearner, seed_to_int
from fma.clip.text_encoder import TextEncoder

__all__ = [
    "CLIPImageEncoder",
    "PromptLearner",
    "TextEncoder",
    "VisualFeatures",
    "load_clip",
    "seed_to_int",
]
