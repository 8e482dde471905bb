"""The registries: lookups name the known entries, names are not silently overwritten, and
every shipped recipe's method, task, dataset and backbone resolve."""

from __future__ import annotations

import pytest

from contrastkit.config import list_recipes, load_recipe, validate
from contrastkit.registry import BACKBONES, DATASETS, METHODS, TASKS, Registry, RegistryError


def test_unknown_names_list_the_registered_ones():
    shipped = r"unknown method .byol.; registered: .*densecl, .*mochi, moco, mvgrl, .*simclr"
    with pytest.raises(RegistryError, match=shipped):
        METHODS.get("byol")
    with pytest.raises(RegistryError, match="unknown backbone 'vit'"):
        BACKBONES.get("vit")


def test_a_second_registration_of_a_name_needs_replace():
    registry: Registry[int] = Registry("thing")
    registry.add("a", 1)
    with pytest.raises(RegistryError, match="a thing named 'a' is already registered"):
        registry.add("a", 2)
    registry.add("a", 2, replace=True)
    assert registry.get("a") == 2


def test_every_shipped_recipe_resolves_through_the_registries():
    for name in list_recipes():
        raw = load_recipe(name)
        if "federation" in raw:
            continue
        recipe = validate(raw)
        assert recipe.task in TASKS and DATASETS.get(recipe.data.dataset).task == recipe.task
        assert isinstance(recipe.method, METHODS.get(recipe.method.name).params)
