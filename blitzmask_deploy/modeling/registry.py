"""Registry of BlitzMask variants: `create_model(name, **overrides)`, `variant_config`, `list_variants`.

Each variant is defined once, by its card `models/<variant>/model.yaml` (core.cards); the registry builds
`ModelConfig`s from the cards, so the cards and the models cannot disagree.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from blitzmask_deploy.core.cards import list_model_cards, load_model_card, model_dir
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.modeling.config import BACKBONES, ModelConfig

if TYPE_CHECKING:
    from blitzmask_deploy.core.checkpoints import CheckpointFile
    from blitzmask_deploy.modeling.blitzmask import BlitzMask


@functools.cache
def _variants() -> dict[str, ModelConfig]:
    """Every variant with a card, smallest backbone first."""
    configs = [_card_config(name) for name in list_model_cards()]
    configs.sort(key=lambda c: (BACKBONES.index(c.backbone), c.variant))
    return {c.variant: c for c in configs}


def _card_config(name: str) -> ModelConfig:
    """The ModelConfig of variant `name`'s card; a value it cannot build is BadInput naming the card."""
    card = load_model_card(name)
    try:
        return ModelConfig.from_dict(card.architecture())
    except BadInput as err:
        raise BadInput(f"{model_dir(name) / 'model.yaml'}: {err}") from None


def list_variants() -> list[str]:
    """Registered variant names, smallest first."""
    return list(_variants())


def variant_config(name: str, **overrides: Any) -> ModelConfig:
    """The default config of variant `name` with `overrides` applied (unknown name or field → BadInput)."""
    variants = _variants()
    if name not in variants:
        raise BadInput(f"unknown model {name!r} (choose from {', '.join(variants)})")
    return variants[name].replace(**overrides) if overrides else variants[name]


def create_model(name: str, **overrides: Any) -> BlitzMask:
    """Build variant `name` (randomly initialised); any ModelConfig field can be overridden."""
    from blitzmask_deploy.modeling.blitzmask import BlitzMask

    return BlitzMask(variant_config(name, **overrides))


def model_from_checkpoint(checkpoint: CheckpointFile) -> BlitzMask:
    """The model a checkpoint describes, with its weights, in eval mode; weights that do not fit → BadInput."""
    from blitzmask_deploy.modeling.blitzmask import BlitzMask

    try:
        config = ModelConfig.from_dict(checkpoint.config)
    except BadInput as err:
        raise BadInput(f"{checkpoint.path}: {err}") from None
    model = BlitzMask(config)
    num_classes = len(checkpoint.categories)
    if model.config.num_classes != num_classes:
        raise BadInput(
            f"{checkpoint.path}: the model has {model.config.num_classes} classes but {num_classes} categories"
        )
    try:
        model.load_state_dict(checkpoint.state_dict)
    except (RuntimeError, TypeError) as err:
        raise BadInput(
            f"{checkpoint.path}: weights do not match the saved config ({str(err).splitlines()[0][:200]})"
        ) from None
    return model.eval()
