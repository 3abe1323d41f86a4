"""Frozen CLIP through open_clip (the only fma module importing open_clip).

``load_clip`` builds the model; ``CLIPImageEncoder`` exposes what Softmax-GradCAM needs from the
image tower; ``TextEncoder`` and ``PromptLearner`` implement CoOp prompts on the text tower.
"""

import fma

fma.setup()  # the torchvision repair must be in place before open_clip imports it

# ruff: noqa: E402
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
