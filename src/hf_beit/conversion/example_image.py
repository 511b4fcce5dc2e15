"""The example photo every converted repo carries (``example.jpg``), so the card's snippets and commands run as written.

It is scikit-learn's sample image ``china.jpg`` (scikit-learn is a runtime dependency of hf_beit): the Python snippets
load it with ``sklearn.datasets.load_sample_image``, the command-line ones read the copy in the repo. Its licence and
attribution are the ones scikit-learn states in ``sklearn/datasets/images/README.txt``.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

EXAMPLE_IMAGE = "example.jpg"
SKLEARN_NAME = "china.jpg"
#: The card's statement of where the photo comes from and under which terms.
EXAMPLE_CREDIT = (
    f"`{EXAMPLE_IMAGE}` (in this repo) is scikit-learn's sample photo `{SKLEARN_NAME}` "
    f'(`sklearn.datasets.load_sample_image("{SKLEARN_NAME}")`, 640x427), by danielbuechele on Flickr, released under '
    "[CC BY 2.0](https://creativecommons.org/licenses/by/2.0/) as scikit-learn's sample-image README states; it is "
    "only an example input and is not covered by the model's licence."
)


def example_image_path() -> Path:
    """The photo as installed with scikit-learn."""
    return Path(str(resources.files("sklearn.datasets.images") / SKLEARN_NAME))


def write_example_image(folder: str | Path) -> Path:
    """Copy the photo, byte for byte, to ``folder/example.jpg``."""
    target = Path(folder) / EXAMPLE_IMAGE
    shutil.copyfile(example_image_path(), target)
    return target
