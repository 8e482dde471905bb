import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _cache_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Generated and decoded data (CONTRASTKIT_CACHE) go to a temporary folder, never ~/.cache."""
    os.environ["CONTRASTKIT_CACHE"] = str(tmp_path_factory.mktemp("contrastkit-cache"))
