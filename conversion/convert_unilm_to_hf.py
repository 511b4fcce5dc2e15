"""Convert an original microsoft/unilm BEiT checkpoint into a Hugging Face repo (thin wrapper).

Example::

    python conversion/convert_unilm_to_hf.py --checkpoint beit_base_patch16_224_pt22k_ft22kto1k.pth \
        --output beit-base-patch16-224 --model-name beit_base_patch16_224_pt22k_ft22kto1k
"""

import sys

from hf_beit.conversion.cli import main

if __name__ == "__main__":
    sys.exit(main())
