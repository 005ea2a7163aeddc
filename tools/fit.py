"""Reconstructs textured 3D faces from photos (GANFit / Fast-GANFit / GANFit++): the main job.

  python tools/fit.py --image=examples/astronaut.jpg --out=out/astronaut
  python tools/fit.py --help

The command line lives in the package (``ganfit_jax/cli.py``; the console script ``ganfit-fit`` is the same).
"""

import sys

from ganfit_jax import cli

if __name__ == "__main__":
  sys.exit(cli.main())
