"""A tiny randomly initialised SAM with hand-set weights, for tests, benchmarks and CPU runs.

:func:`build_tiny_sam` is what ``build_sam(model_type="tiny")`` returns
(:mod:`fma.sam.builder`); it is wired exactly as ``segment_anything/build_sam.py`` wires the real
models, and its masks carry no meaning.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

__all__ = ["build_tiny_sam", "sam_registry"]


def sam_registry() -> dict[str, Callable[..., Any]]:
    """segment-anything's ``sam_model_registry``; a missing install fails with its pip hint."""
    import fma

    fma.setup()  # the torchvision repair before segment_anything imports torchvision
    try:
        from segment_anything import sam_model_registry
    except ImportError as exc:
        raise ImportError(
            "SAM masks need segment-anything: pip install 'fma[sam]' "
            "(segment-anything, opencv-python, scikit-image)"
        ) from exc
    return sam_model_registry


def build_tiny_sam(
    img_size: int = 128, prompt_dim: int = 128, seed: int = 0, *, point_local: bool = True
) -> Any:
    """A small SAM whose masks are blobs around each point prompt, for tests and benchmarks.

    Built from ``segment_anything.modeling`` classes and wired as
    ``segment_anything/build_sam.py`` wires the real models (ViT image encoder with one block,
    prompt encoder, two-way-transformer mask decoder with one layer), with random weights from
    ``seed``. Random weights alone give nearly the same mask for every prompt (which NMS reduces
    to one), so a few weights are then set by hand: the prompt encoder's positional encoding
    uses three fixed spatial frequencies, the encoder's absolute position embedding carries the
    same encoding, and the decoder passes the point's encoding to the mask tokens, so that mask
    ``t`` of a point ``p`` is ``{u : kernel(u, p) > b_t}`` with nested thresholds
    (sub-part, part, whole), modulated by the image through the (scaled) patch embedding.
    Predicted IoUs vary smoothly with the point around 0.88 / 0.90 / 0.84 per level.
    The masks mean nothing; the point is realistic mask statistics (nesting, overlaps, many
    distinct boxes) on CPU in milliseconds.

    Args:
        img_size: encoder input size (multiple of 16); features are (img_size/16)**2.
        prompt_dim: prompt/mask-decoder width (multiple of 32, >= 128).
        seed: torch seed of the random weights.
        point_local: set the hand-made weights (False: purely random weights).

    Returns:
        ``segment_anything.modeling.Sam`` in eval mode, on CPU.
    """
    import torch

    sam_registry()  # install hint when segment-anything is missing
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    if img_size % 16 or img_size < 32:
        raise ValueError(f"img_size must be a multiple of 16 and >= 32, got {img_size}")
    if prompt_dim % 32 or prompt_dim < 128:
        raise ValueError(f"prompt_dim must be a multiple of 32 and >= 128, got {prompt_dim}")
    emb, c_dim, e_dim = img_size // 16, prompt_dim, 32
    rng_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        sam = Sam(
            image_encoder=ImageEncoderViT(
                depth=1,
                embed_dim=e_dim,
                img_size=img_size,
                mlp_ratio=4,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                num_heads=2,
                patch_size=16,
                qkv_bias=True,
                use_rel_pos=True,
                global_attn_indexes=[0],
                window_size=2,
                out_chans=c_dim,
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=c_dim,
                image_embedding_size=(emb, emb),
                input_image_size=(img_size, img_size),
                mask_in_chans=4,
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(
                    depth=1, embedding_dim=c_dim, mlp_dim=2 * c_dim, num_heads=2
                ),
                transformer_dim=c_dim,
                iou_head_depth=3,
                iou_head_hidden_dim=c_dim,
            ),
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375],
        )
        coeffs = torch.randn(4, 6)  # point-dependence of the predicted IoUs
    finally:
        torch.random.set_rng_state(rng_state)
    if point_local:
        with torch.no_grad():
            _make_point_local(sam, coeffs)
    sam.eval()
    return sam


def _make_point_local(sam: Any, iou_coeffs: Any) -> None:
    """Set the weights that make :func:`build_tiny_sam`'s masks local to their point."""
    import math

    import torch

    k_freq, half = 3, sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.shape[1]
    c_dim = 2 * half
    z = half - 1  # a sine channel with zero frequency: 0 in every positional encoding
    eye = torch.eye(c_dim)
    # Positional encoding with three frequencies 60 degrees apart (|f| = 0.5 on [-1, 1]).
    ang = torch.tensor([0.3, 0.3 + math.pi / 3, 0.3 + 2 * math.pi / 3])
    gauss = sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
    gauss.zero_()
    gauss[:, :k_freq] = 0.5 * torch.stack([torch.cos(ang), torch.sin(ang)])
    src = list(range(k_freq)) + list(range(half, half + k_freq))  # sin_k, cos_k channels

    # Image encoder: identity block, position embedding [F, -F], faint image term.
    enc = sam.image_encoder
    emb = enc.pos_embed.shape[1]
    for blk in enc.blocks:
        for lin in (blk.attn.proj, blk.mlp.lin2):
            lin.weight.zero_()
            lin.bias.zero_()
    feat = sam.prompt_encoder.pe_layer((emb, emb)).permute(1, 2, 0)[..., src]  # (h, w, 6)
    enc.pos_embed.zero_()
    enc.pos_embed[0, :, :, :6] = feat
    enc.pos_embed[0, :, :, 6:12] = -feat
    enc.patch_embed.proj.weight.mul_(0.3)
    enc.patch_embed.proj.bias.zero_()
    conv1, _, conv3, _ = enc.neck
    conv1.weight.zero_()
    conv1.weight[:12, :12, 0, 0] = torch.eye(12)
    conv3.weight.zero_()
    conv3.weight[:, :, 1, 1] = eye

    # Prompts: the point token carries 10 in channel z, padding and dense prompts are zero.
    pr = sam.prompt_encoder
    pr.point_embeddings[1].weight.zero_()
    pr.point_embeddings[1].weight[0, z] = 10.0
    pr.not_a_point_embed.weight.zero_()
    pr.no_mask_embed.weight.zero_()

    # Decoder: output tokens attend to the point token and copy it; other updates are off.
    dec = sam.mask_decoder
    for tok in (dec.iou_token, dec.mask_tokens):
        tok.weight.zero_()
        tok.weight[:, z] = 1.0
    layer = dec.transformer.layers[0]
    sa = layer.self_attn
    head_dim = sa.internal_dim // sa.num_heads
    for proj in (sa.q_proj, sa.k_proj):
        proj.weight.zero_()
        proj.bias.zero_()
        for h in range(sa.num_heads):
            proj.weight[h * head_dim, z] = math.sqrt(20.0)
    for proj in (sa.v_proj, sa.out_proj):
        proj.weight.copy_(eye)
        proj.bias.zero_()
    for att in (
        layer.cross_attn_token_to_image,
        layer.cross_attn_image_to_token,
        dec.transformer.final_attn_token_to_image,
    ):
        att.out_proj.weight.zero_()
        att.out_proj.bias.zero_()
    layer.mlp.lin2.weight.zero_()
    layer.mlp.lin2.bias.zero_()

    # Upscaling keeps [F, -F] and a constant channel, kept positive for GELU.
    ct1, ln_up, _, ct2, _ = dec.output_upscaling
    ct1.weight.zero_()
    ct1.bias.zero_()
    ct1.weight[:12, :12] = torch.eye(12)[:, :, None, None]
    ln_up.weight.fill_(0.5)
    ln_up.bias.fill_(4.0)
    ct2.weight.zero_()
    ct2.bias.zero_()
    ct2.weight[:13, :13] = torch.eye(13)[:, :, None, None]
    # Gain of F(u) in the upscaled features: keys = [F, -F] / sqrt(2K/C); the upscaling layer
    # norm divides by 2 and multiplies by 0.5.
    gain = 0.25 * math.sqrt(c_dim / (2 * k_freq))

    # Tokens reach the hypernetworks as T = (x - mu) / sigma (layer norms of x = PE(p) + 10 e_z);
    # typical mu/sigma turn T back into the point's encoding F(p).
    x_typ = torch.zeros(c_dim)
    x_typ[half + k_freq :] = 1.0
    x_typ[z] = 10.0
    mu, sigma = x_typ.mean().item(), x_typ.std(unbiased=False).item()
    sharp = 10.0
    level_k = (0.6, 0.85, 0.6, 0.2)  # token 0 (single-mask output), then levels 0, 1, 2
    for t, mlp in enumerate(dec.output_hypernetworks_mlps):
        l1, l2, l3 = mlp.layers
        l1.weight.copy_(eye)
        l1.bias.fill_(20.0)
        l2.weight.copy_(eye)
        l2.bias.zero_()
        l3.weight.zero_()
        l3.bias.zero_()
        for c, s in enumerate(src):
            l3.weight[c, s] = sharp / 2 * sigma
            l3.bias[c] = sharp / 2 * (mu - 20 * sigma)
            l3.weight[6 + c, s] = -sharp / 2 * sigma
            l3.bias[6 + c] = -sharp / 2 * (mu - 20 * sigma)
        l3.bias[12] = -sharp * k_freq * gain * level_k[t] / 4.0

    # Predicted IoU: base per output + a smooth function of the point.
    base = (0.88, 0.88, 0.90, 0.84)
    h1, h2, h3 = dec.iou_prediction_head.layers
    h1.weight.copy_(eye)
    h1.bias.fill_(20.0)
    h2.weight.copy_(eye)
    h2.bias.zero_()
    h3.weight.zero_()
    h3.bias.zero_()
    coeffs = iou_coeffs / iou_coeffs.norm(dim=1, keepdim=True) * 0.08
    for t in range(4):
        for c, s in enumerate(src):
            h3.weight[t, s] = coeffs[t, c] * sigma
        h3.bias[t] = base[t] + (coeffs[t] * (mu - 20 * sigma)).sum()
