"""A zoo of encoders trained by our own recipes, each entry with the band its metric must land in.

``get(name)`` returns cached weights (sha256 checked), downloads them from the entry's URL, or
trains the pinned recipe; ``verify(name)`` always retrains and compares. A recipe starts from an
entry with ``model.init: zoo:NAME``. Metafiles: ``contrastkit/recipes/zoo/*.yaml``.
"""

from contrastkit.zoo.cache import HOME_ENV, Cached, home, read_cached
from contrastkit.zoo.fetch import OutsideBand, get, verify, weights_path
from contrastkit.zoo.metafiles import ZOO_FILES_ENV, Entry, ZooError, entries, find

__all__ = [
    "HOME_ENV",
    "ZOO_FILES_ENV",
    "Cached",
    "Entry",
    "OutsideBand",
    "ZooError",
    "entries",
    "find",
    "get",
    "home",
    "read_cached",
    "verify",
    "weights_path",
]
